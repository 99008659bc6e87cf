// searchd's page, improved when JavaScript runs: results as you type (from /api/search, the
// page's JSON twin), completions from /api/suggest, and keyboard shortcuts. Without it the page
// works through plain GET forms and links, so nothing here may be the only way to do something.
"use strict";

(function () {
  const box = document.getElementById("q");
  const results = document.getElementById("results");
  const completions = document.getElementById("completions");
  const SEARCH_DELAY_MS = 200;
  const SUGGEST_DELAY_MS = 120;
  const FILTERS = ["sort", "category", "from", "to", "size"];
  const PAGE_SIZE = 10;
  const INDEXING_POLL_MS = 1000;

  // --- helpers ----------------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child);
    }
    return node;
  }

  function debounce(fn, ms) {
    let timer = 0;
    return function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  function number(n) {
    return n.toLocaleString("en-US");
  }

  function typingIn(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  // The state of a results page is its query string; both the page and the API read it.
  function currentState() {
    const params = new URLSearchParams(location.search);
    const state = { q: box ? box.value : "" };
    for (const name of FILTERS) state[name] = params.get(name) || "";
    return state;
  }

  function searchParams(state, changes) {
    const merged = Object.assign({}, state, changes || {});
    const params = new URLSearchParams();
    params.set("q", merged.q || "");
    if (merged.sort && merged.sort !== "relevance") params.set("sort", merged.sort);
    for (const name of ["category", "from", "to"]) if (merged[name]) params.set(name, merged[name]);
    if (merged.page && merged.page > 1) params.set("page", String(merged.page));
    if (merged.size && Number(merged.size) !== PAGE_SIZE) params.set("size", String(merged.size));
    return params;
  }

  function searchUrl(state, changes) {
    return "/search?" + searchParams(state, changes).toString();
  }

  function docUrl(id, q) {
    const path = id.split("/").map(encodeURIComponent).join("/");
    return "/doc/" + path + (q ? "?q=" + encodeURIComponent(q) : "");
  }

  // --- rendering (mirrors web/templates/_results.html) -----------------------------------------

  function renderHit(hit, q) {
    const meta = el("p", { class: "hit-meta" });
    const parts = [];
    if (hit.category) parts.push(el("span", { class: "category", text: hit.category }));
    if (hit.date) parts.push(el("time", { datetime: hit.date, text: hit.date.slice(0, 10) }));
    parts.push(el("span", { class: "path", text: hit.path }));
    if (hit.duplicates) {
      parts.push(el("span", { class: "dups", text: hit.duplicates + " near-duplicate" + (hit.duplicates === 1 ? "" : "s") + " folded in" }));
    }
    parts.forEach((part, i) => { if (i) meta.append(" · "); meta.append(part); });
    const snippet = el("p", { class: "snippet" });
    // The server builds snippets from escaped text and adds only <mark>: safe as HTML.
    snippet.innerHTML = hit.snippet;
    return el("li", { class: "hit" },
      el("h3", {}, el("a", { class: "hit-link", href: docUrl(hit.id, q), text: hit.title })),
      meta, snippet);
  }

  function facetList(title, id, entries, isActive, link) {
    const list = el("ul", { "aria-labelledby": id });
    for (const [name, count] of entries) {
      list.append(el("li", {},
        el("a", { href: link(name, isActive(name)), "aria-current": isActive(name) ? "true" : null, text: name }),
        " ", el("span", { class: "count", text: String(count) })));
    }
    return [el("h2", { id: id, text: title }), list];
  }

  function renderFacets(view, state) {
    const f = view.filters;
    const hasFacets = Object.keys(view.facets.category || {}).length || Object.keys(view.facets.year || {}).length;
    if (!hasFacets && !f.category && !f.from && !f.to) return null;
    const aside = el("aside", { class: "facets", "aria-label": "Filters" });
    if (f.category || f.from || f.to) {
      aside.append(el("p", { class: "active-filters" },
        el("a", { href: searchUrl(state, { category: "", from: "", to: "", page: 1 }), text: "Clear filters" })));
    }
    const categories = Object.entries(view.facets.category || {});
    if (categories.length) {
      aside.append(...facetList("Category", "facet-category", categories,
        (name) => f.category === name,
        (name, active) => searchUrl(state, { category: active ? "" : name, page: 1 })));
    }
    const years = Object.entries(view.facets.year || {}).sort((a, b) => b[0].localeCompare(a[0]));
    if (years.length) {
      aside.append(...facetList("Year", "facet-year", years,
        (year) => f.from === year && f.to === year,
        (year, active) => searchUrl(state, active ? { from: "", to: "", page: 1 } : { from: year, to: year, page: 1 })));
    }
    return aside;
  }

  function renderResults(view) {
    const f = view.filters;
    // Links carry the query as the server read it (e.g. without a typed `sort:date`) and the
    // sort and filters it applied, exactly as the server-rendered page's links do.
    const state = Object.assign({ q: view.query, size: view.size }, f);
    const frag = document.createDocumentFragment();
    frag.append(el("h1", { class: "visually-hidden", text: "Search results for " + view.query }));
    const meta = el("p", { class: "meta", role: "status", id: "result-meta" },
      el("span", { class: "total", text: number(view.total) + " result" + (view.total === 1 ? "" : "s") }),
      " for ", el("strong", { class: "echo", text: view.results_for || view.query }), " ",
      el("span", { class: "took", text: "(" + Math.round(view.took_ms) + " ms)" }));
    if (view.pages > 1) meta.append(" · page " + view.page + " of " + number(view.pages));
    frag.append(meta);
    if (view.notice) frag.append(el("p", { class: "notice", text: view.notice }));
    if (view.suggestion && view.suggestion !== view.results_for) {
      frag.append(el("p", { class: "notice suggestion" }, "Did you mean ",
        el("a", { href: searchUrl(state, { q: view.suggestion, page: 1 }), text: view.suggestion }), "?"));
    }
    const section = el("section", { class: "results", "aria-labelledby": "results-title" });
    const sortList = el("ul", { class: "sort", "aria-labelledby": "sort-label" },
      el("li", {}, el("a", { href: searchUrl(state, { sort: "relevance", page: 1 }), "aria-current": f.sort !== "date" ? "true" : null, text: "Relevance" })),
      el("li", {}, el("a", { href: searchUrl(state, { sort: "date", page: 1 }), "aria-current": f.sort === "date" ? "true" : null, text: "Newest" })));
    section.append(el("div", { class: "toolbar" },
      el("h2", { id: "results-title", class: "visually-hidden", text: "Results" }),
      el("span", { id: "sort-label", text: "Sort:" }), " ", sortList));
    if (!view.hits.length) {
      const empty = el("div", { class: "empty" },
        el("h2", {}, "No articles match ", el("q", { text: view.query }), (f.category || f.from) ? " with these filters" : "",
          document.getElementById("indexing") ? " yet: the folder is still being indexed." : "."));
      const tips = document.getElementById("tips-template");
      if (tips) empty.append(tips.content.cloneNode(true));
      section.append(empty);
    }
    const list = el("ol", { class: "hits", start: String((view.page - 1) * view.size + 1) });
    for (const hit of view.hits) list.append(renderHit(hit, view.query));
    section.append(list);
    if (view.pages > 1) {
      const pager = el("nav", { class: "pager", "aria-label": "Pages" });
      pager.append(view.page > 1 ? el("a", { rel: "prev", href: searchUrl(state, { page: view.page - 1 }), text: "← Previous" }) : el("span"));
      pager.append(el("span", { class: "page-of", text: "Page " + view.page + " of " + number(view.pages) }));
      pager.append(view.page < view.pages ? el("a", { rel: "next", href: searchUrl(state, { page: view.page + 1 }), text: "Next →" }) : el("span"));
      section.append(pager);
    }
    frag.append(el("div", { class: "layout" }, renderFacets(view, state), section));
    return frag;
  }

  function renderError(message) {
    return el("p", { class: "notice error", role: "alert", text: message });
  }

  // --- instant search ---------------------------------------------------------------------------

  let inFlight = null;

  async function instantSearch() {
    const state = currentState();
    const q = state.q.trim();
    if (inFlight) inFlight.abort();
    if (!q) return;
    const controller = new AbortController();
    inFlight = controller;
    const params = searchParams(state, { page: 1 });
    results.setAttribute("aria-busy", "true");
    try {
      const response = await fetch("/api/search?" + params.toString(), {
        signal: controller.signal, headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      const data = await response.json();
      if (controller.signal.aborted) return;
      results.replaceChildren(response.ok ? renderResults(data) : renderError(data.error.message));
      history.replaceState(null, "", "/search?" + params.toString());
      document.title = state.q + " – searchd";
      results.dataset.updated = String(Date.now());
    } catch (err) {
      if (err.name !== "AbortError") results.replaceChildren(renderError("Search failed: " + err.message));
    } finally {
      if (inFlight === controller) {
        inFlight = null;
        results.removeAttribute("aria-busy");
      }
    }
  }

  async function suggest() {
    const q = box.value;
    const last = q.split(" ").pop();
    if (!last) { completions.replaceChildren(); return; }
    try {
      const response = await fetch("/api/suggest?q=" + encodeURIComponent(q), { credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      if (data.query !== box.value) return; // the user typed on; this list is stale
      completions.replaceChildren(...data.suggestions
        .filter((s) => s !== q)
        .map((s) => el("option", { value: s })));
    } catch (err) {
      // Completions are a convenience: a failed request just shows none.
    }
  }

  // --- a bulk index under way: the count goes up, and the results follow when it is done --------

  const indexing = document.getElementById("indexing");

  async function followIndexing() {
    try {
      const response = await fetch("/healthz", { credentials: "same-origin", cache: "no-store" });
      const health = await response.json();
      const progress = response.ok ? health.progress : null;
      if (progress) {
        indexing.textContent = "Indexing " + number(progress.done) + " of " + number(progress.total) + " articles…";
      } else if (response.ok) {
        indexing.remove();
        if (box && box.value.trim()) instantSearch();
        return;
      }
    } catch (err) {
      // The server may be restarting: keep the last count and ask again.
    }
    setTimeout(followIndexing, INDEXING_POLL_MS);
  }

  if (indexing) setTimeout(followIndexing, INDEXING_POLL_MS);

  if (box && completions) box.addEventListener("input", debounce(suggest, SUGGEST_DELAY_MS));
  if (box && results) {
    box.addEventListener("input", debounce(instantSearch, SEARCH_DELAY_MS));
  }

  // --- keyboard ---------------------------------------------------------------------------------

  function resultLinks() {
    return Array.from(document.querySelectorAll("a.hit-link"));
  }

  function moveSelection(step) {
    const links = resultLinks();
    if (!links.length) return false;
    const at = links.indexOf(document.activeElement);
    const next = at === -1 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, at + step));
    links[next].focus();
    links[next].closest(".hit").scrollIntoView({ block: "nearest" });
    return true;
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "/" && !typingIn(event.target) && box) {
      event.preventDefault();
      box.focus();
      box.select();
      return;
    }
    if (typingIn(event.target)) return;
    if (event.key === "j" || event.key === "ArrowDown") {
      if (moveSelection(1)) event.preventDefault();
    } else if (event.key === "k" || event.key === "ArrowUp") {
      if (moveSelection(-1)) event.preventDefault();
    } else if (event.key === "Escape" && box) {
      box.focus();
    }
  });
})();

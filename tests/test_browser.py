"""The search page in a real browser: Debian's Chromium driven by Playwright against a live
waitress server on a real index. Instant search, paging, sort, facets, the article view, keyboard
navigation, JavaScript off, the dark scheme, a phone-sized screen, and axe-core accessibility."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Iterator

import pytest

from searchd.config import Config
from searchd.engines.whoosh.writer import WhooshWriter
from searchd.watcher import Daemon
from searchd.web import create_app, serving

from .conftest import REPO, build_index, write_files
from .test_web import web_articles

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (the test extra)")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("browser")
    folder = write_files(root / "articles", web_articles())
    build_index(folder, root / "index")
    with serving(create_app(Config(folder=folder, index_dir=root / "index"))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url: str):
    """A fresh page with JavaScript on, the real CSP in force, and console errors collected
    (a CSP violation or a script error shows up there)."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"browser console errors: {errors}"


def hit_titles(page) -> list[str]:
    return page.locator("a.hit-link").all_inner_texts()


def test_typing_shows_highlighted_results_without_reloading_and_keeps_the_url_in_sync(page) -> None:
    page.goto("/")
    assert page.evaluate("document.activeElement.id") == "q"  # autofocus
    page.evaluate("window.__samePage = true")
    page.keyboard.type("solar pane", delay=30)
    page.wait_for_url(re.compile(r"/search\?q=solar\+pane$"))
    page.wait_for_selector(".hit mark")
    assert page.evaluate("window.__samePage") is True  # updated in place, not a page load
    expected = page.request.get("/api/search?q=solar+pane").json()["total"]
    assert expected > 0 and page.locator("#result-meta .total").inner_text() == f"{expected} results"
    marks = {m.lower() for m in page.locator(".hit .snippet mark").all_inner_texts()}
    assert "solar" in marks and any(m.startswith("panel") for m in marks)
    assert page.title() == "solar pane – searchd"
    # Completions for the word being typed, offered as whole queries.
    sync_api.expect(page.locator("#completions option").first).to_be_attached(timeout=10_000)
    options = page.locator("#completions option").evaluate_all("els => els.map(e => e.value)")
    assert "solar panel" in options or "solar panels" in options


def results_outline(page) -> dict:
    """What a reader can see and follow in the results area, minus the timing."""
    return page.evaluate("""() => ({
        links: Array.from(document.querySelectorAll('#results a')).map(a => [a.textContent.trim(), a.getAttribute('href'), a.getAttribute('aria-current')]),
        snippets: Array.from(document.querySelectorAll('#results .snippet')).map(s => s.innerHTML),
        meta: Array.from(document.querySelectorAll('#results .hit-meta')).map(m => m.textContent.replace(/\\s+/g, ' ').trim()),
        total: document.querySelector('#result-meta .total').textContent,
        headings: Array.from(document.querySelectorAll('#results h1, #results h2, #results h3')).map(h => h.textContent.trim()),
    })""")


@pytest.mark.parametrize("typed, url", [
    ("solar", "/search?q=solar"),
    ("zzqqxxyy", "/search?q=zzqqxxyy"),
    ("photovoltaik", "/search?q=photovoltaik"),
])
def test_instant_results_match_the_server_rendered_page(page, typed: str, url: str) -> None:
    """The script renders /api/search's JSON; the server renders the same view with Jinja: a
    reader must not be able to tell which one drew the page."""
    page.goto("/search?q=grid&category=energy")  # filters in force carry over to the new query
    page.fill("#q", "")
    page.keyboard.type(typed, delay=10)
    page.wait_for_url(f"**{url}&category=energy")
    shown = page.request.get(f"/api/search?q={typed}&category=energy").json()["results_for"]  # or a did-you-mean
    sync_api.expect(page.locator("#result-meta .echo")).to_have_text(shown, timeout=10_000)
    instant = results_outline(page)
    assert instant["links"] and instant["headings"]
    page.goto(f"{url}&category=energy")
    assert results_outline(page) == instant


def test_paging_and_sorting(page) -> None:
    page.goto("/search?q=solar")
    first_page = hit_titles(page)
    assert len(first_page) == 10 and page.locator("ol.hits").get_attribute("start") == "1"
    page.click("a[rel=next]")
    page.wait_for_url("**/search?q=solar&page=2")
    assert page.locator("ol.hits").get_attribute("start") == "11"
    assert not set(hit_titles(page)) & set(first_page)
    page.click("text=Newest")
    page.wait_for_url("**/search?q=solar&sort=date")
    dates = page.locator(".hit time").evaluate_all("els => els.map(e => e.getAttribute('datetime'))")
    assert len(dates) == 10 and dates == sorted(dates, reverse=True)
    assert page.locator(".sort a[aria-current]").inner_text() == "Newest"


def test_facet_filter_and_clearing_it(page) -> None:
    page.goto("/search?q=solar")
    page.click(".facets a:text-is('science')")
    page.wait_for_url("**/search?q=solar&category=science")
    assert page.locator("#result-meta .total").inner_text() == "8 results"
    assert set(page.locator(".hit .category").all_inner_texts()) == {"science"}
    page.click(".facets a:text-is('2024')")
    page.wait_for_url("**category=science&from=2024&to=2024")
    assert all(d.startswith("2024") for d in page.locator(".hit time").all_inner_texts())
    page.click("text=Clear filters")
    page.wait_for_url("**/search?q=solar")
    assert page.locator("#result-meta .total").inner_text() == "26 results"


def test_open_an_article_with_marked_words_and_similar_articles(page) -> None:
    page.goto("/search?q=photovoltaic+recycling")
    page.locator("a.hit-link").first.click()
    page.wait_for_url(re.compile(r"/doc/.+\?q=photovoltaic"))
    assert "Recycling" in page.locator("h1").inner_text()
    marked = {m.lower() for m in page.locator("article mark").all_inner_texts()}
    assert {"photovoltaic", "recycling"} <= marked
    similar = page.locator(".similar a")
    assert similar.count() >= 1
    similar.first.click()
    page.wait_for_url(re.compile(r"/doc/"))
    assert page.locator("h1").count() == 1


def test_keyboard_navigation_through_results(page) -> None:
    page.goto("/search?q=solar")
    page.locator("#result-meta").click()  # leave the search box
    page.keyboard.press("j")
    links = page.locator("a.hit-link")
    assert page.evaluate("document.activeElement.className") == "hit-link"
    assert page.evaluate("document.activeElement.getAttribute('href')") == links.nth(0).get_attribute("href")
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.getAttribute('href')") == links.nth(2).get_attribute("href")
    page.keyboard.press("k")
    second = links.nth(1).get_attribute("href")
    assert page.evaluate("document.activeElement.getAttribute('href')") == second
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") == "q"
    page.locator("#result-meta").click()
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{second}")
    # On the article page "/" jumps to the search box, where j is just a letter again.
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("End")
    page.keyboard.type("j")
    assert page.input_value("#q") == "solarj"


def test_the_page_works_with_javascript_off(browser, base_url: str) -> None:
    context = browser.new_context(base_url=base_url, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto("/")
        page.fill("#q", "solar grid")
        page.press("#q", "Enter")
        page.wait_for_url("**/search?q=solar+grid")
        assert page.locator(".hit mark").count() > 0
        page.click("text=Newest")
        page.wait_for_url("**/search?q=solar+grid&sort=date")
        page.fill("#q", "solar")
        page.press("#q", "Enter")  # the sort order stays while the query changes
        page.wait_for_url("**/search?q=solar&sort=date")
        page.click("a[rel=next]")
        page.wait_for_url("**/search?q=solar&sort=date&page=2")
        page.click(".facets a:text-is('energy')")
        page.wait_for_url("**/search?q=solar&sort=date&category=energy")
        assert set(page.locator(".hit .category").all_inner_texts()) == {"energy"}
        page.locator("a.hit-link").first.click()
        page.wait_for_url(re.compile(r"/doc/"))
        assert page.locator("article mark").count() > 0
    finally:
        context.close()


def test_dark_scheme_and_phone_width(browser, base_url: str) -> None:
    context = browser.new_context(base_url=base_url, color_scheme="dark", viewport={"width": 360, "height": 740},
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto("/search?q=solar")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        text = page.evaluate("getComputedStyle(document.body).color")
        assert background == "rgb(13, 17, 23)" and text == "rgb(230, 237, 243)"
        assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing sticks out sideways
        assert page.locator("#q").bounding_box()["width"] > 150
        page.goto("/doc/energy/solar-00.md?q=solar")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        context.close()


def test_a_browser_logs_in_with_the_token_as_basic_auth_password(browser, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "articles", {"a/one.txt": "Tidal power\n\nTidal turbines in the strait.\n"})
    build_index(folder, tmp_path / "index")
    app = create_app(Config(folder=folder, index_dir=tmp_path / "index", token="browser-token"))
    with serving(app) as url:
        anonymous = browser.new_context(base_url=url)
        try:
            # Headless Chromium cannot show the login prompt a 401 with a Basic challenge opens,
            # and fails the navigation instead: that failure is the prompt's stand-in here.
            with pytest.raises(sync_api.Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
                anonymous.new_page().goto("/")
            response = anonymous.request.get("/")
            assert response.status == 401 and 'Basic realm="searchd"' in response.headers["www-authenticate"]
        finally:
            anonymous.close()
        context = browser.new_context(base_url=url, http_credentials={"username": "me", "password": "browser-token"})
        try:
            page = context.new_page()
            assert page.goto("/").status == 200
            page.focus("#q")  # autofocus is the first test's subject; here typing must land in the box
            page.keyboard.type("tidal", delay=20)  # instant search's fetch carries the login too
            page.wait_for_url("**/search?q=tidal")
            page.wait_for_selector(".hit mark")
        finally:
            context.close()


def axe_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"]]


@pytest.mark.skipif(not AXE.exists(), reason=f"axe-core is missing at {AXE}: run `npm install` (scripts/test.sh does)")
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violations(browser, base_url: str, scheme: str) -> None:
    # bypass_csp only so that axe itself can be injected; the app's pages are unchanged.
    context = browser.new_context(base_url=base_url, color_scheme=scheme, bypass_csp=True)
    page = context.new_page()
    try:
        report = {}
        for url in ("/", "/search?q=solar", "/search?q=solar&category=energy&sort=date",
                    "/search?q=zzqqxxyy", "/doc/energy/solar-00.md?q=solar", "/help"):
            page.goto(url)
            report[url] = axe_violations(page)
        page.goto("/")  # results rendered by the script, not the server
        page.focus("#q")  # after a run of axe the page may not take autofocus at once
        page.keyboard.type("solar", delay=20)
        page.wait_for_url("**/search?q=solar")
        page.wait_for_selector(".hit mark")
        report["instant results"] = axe_violations(page)
        serious = {url: [v for v in found if v["impact"] in ("serious", "critical")] for url, found in report.items()}
        assert all(not found for found in serious.values()), serious
    finally:
        context.close()


def test_slash_on_a_results_page_goes_to_the_box_and_typing_continues_the_query(page) -> None:
    page.goto("/search?q=solar")
    assert page.evaluate("document.activeElement.id") != "q"  # keys move through the results here
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    assert page.input_value("#q") == "solar"  # the shortcut typed nothing
    page.keyboard.press("End")
    page.keyboard.type(" grid", delay=20)
    assert page.input_value("#q") == "solar grid"
    page.wait_for_url("**/search?q=solar+grid")


def test_instant_search_and_its_links_keep_the_page_size(page) -> None:
    page.goto("/search?q=grid&size=5")
    page.fill("#q", "solar")
    page.wait_for_url("**/search?q=solar&size=5")
    # expect() polls with Playwright's own script: a string for wait_for_function is eval'd in the
    # page, which the page's CSP forbids once it has to be polled.
    sync_api.expect(page.locator("#result-meta .echo")).to_have_text("solar", timeout=10_000)
    assert len(hit_titles(page)) == 5
    page.click("a[rel=next]")
    page.wait_for_url("**/search?q=solar&page=2&size=5")
    assert len(hit_titles(page)) == 5 and page.locator("ol.hits").get_attribute("start") == "6"


def test_a_390_px_phone_header_keeps_the_query_readable_and_help_beside_the_brand(browser, base_url: str) -> None:
    context = browser.new_context(base_url=base_url, viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    try:
        page.goto("/search?q=economy+growth")
        box = page.locator("#q").bounding_box()
        assert box["width"] >= 250, box
        assert page.evaluate("(() => { const q = document.getElementById('q'); return q.scrollWidth <= q.clientWidth; })()")
        brand, help_link = page.locator(".brand").bounding_box(), page.locator(".top-links a").bounding_box()
        assert help_link["y"] < brand["y"] + brand["height"] and brand["y"] < help_link["y"] + help_link["height"]
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_the_page_counts_up_while_the_folder_is_indexed_then_shows_the_results(
        browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "articles"
    for n in range(3000):
        path = folder / f"d{n % 10}" / f"f{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Harbour {n}\n\nHarbour report {n} on the tides.\n", encoding="utf-8")
    # The writer waits after its first commit until the page has been seen mid-index: an idle
    # machine indexes these files faster than a browser opens a page (tests/held_writer.py).
    page_seen = threading.Event()
    apply = WhooshWriter.apply

    def held_apply(self: WhooshWriter, batch) -> None:  # type: ignore[no-untyped-def]
        apply(self, batch)
        if self.commits == 1:
            page_seen.wait(timeout=120)

    monkeypatch.setattr(WhooshWriter, "apply", held_apply)
    daemon = Daemon(Config(folder=folder, index_dir=tmp_path / "index")).start()
    try:
        with serving(create_app(daemon.config, status=daemon.status)) as url:
            context = browser.new_context(base_url=url)
            try:
                page = context.new_page()
                page.set_default_timeout(60_000)
                page.goto("/search?q=harbour")
                first = page.locator("#indexing").inner_text()
                assert re.fullmatch(r"Indexing [\d,]+ of 3,000 articles…", first), first
                page_seen.set()
                # The count follows /healthz in place; when the index is done the results follow.
                page.wait_for_selector("#indexing", state="detached")
                sync_api.expect(page.locator("#result-meta .total")).to_have_text("3,000 results", timeout=30_000)
            finally:
                context.close()
    finally:
        page_seen.set()
        daemon.stop()

"""Hostile files in the folder of a live `searchd serve`: each one is indexed correctly or skipped
with a reason shown in /healthz and `searchd status`; the good files beside them stay searchable;
the daemon never stops. The corpus is generated here, never committed.

Every hostile file goes through both paths that read files: the start-up reconcile (files present
before the daemon starts, under boot/) and the live watcher (the same files written while it runs,
under live/).
"""

from __future__ import annotations

import codecs
import json
import os
import random
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from relkit import article_text, cli, get, status_json, wait_until

MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    content: bytes | None  # None: built specially (sparse file, symlink, fifo)
    outcome: str  # "indexed" (searchable by token), "skipped" (reason listed), "ignored" (neither)
    token: str = ""
    reason: str = ""
    text: str = ""  # a phrase that must survive decoding intact


def _with_token(text: str, token: str, encoding: str = "utf-8") -> bytes:
    return text.replace("TOKEN", token).encode(encoding)


def hostile_cases(phase: str) -> list[Case]:
    """The hostile corpus; tokens end in `phase` so that copies in two folders are told apart
    (identical copies would be folded together as near-duplicates by the search)."""
    rng = random.Random(7)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(rng.randrange(256) for _ in range(30_000))
    deep = 3000
    bomb = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
        f"{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdef", "bcdefg")
    ]
    return [
        Case("binary.txt", png, "skipped", reason="binary data"),
        Case("invalid-utf8.txt", b"Mixed bytes\n\nhostinvalid" + phase.encode() + b" \xff\xfe\xc3\x28 caf\xe9 end\n", "indexed", "hostinvalid" + phase, text="café end"),
        Case("utf16-bom.txt", codecs.BOM_UTF16_LE + _with_token("Überschrift\n\nTOKEN Straße und Größe.\n", "hostutfsixteen" + phase, "utf-16-le"),
             "indexed", "hostutfsixteen" + phase, text="Straße und Größe"),
        Case("latin1.txt", _with_token("Café\n\nTOKEN: la crème brûlée à Noël.\n", "hostlatin" + phase, "latin-1"), "indexed", "hostlatin" + phase,
             text="crème brûlée à Noël"),
        Case("cp1252.txt", _with_token("Quotes\n\nTOKEN “smart” — €5.\n", "hostcpwin" + phase, "cp1252"), "indexed", "hostcpwin" + phase, text="“smart” — €5"),
        Case("empty.txt", b"", "skipped", reason="empty file"),
        Case("blank.md", b"\n \n\t\n", "skipped", reason="empty file"),
        Case("big-50mb.txt", None, "skipped", reason="too large"),
        Case("deep.html", _with_token("<html><head><title>Deep</title></head><body>" + "<div>" * deep + "<p>TOKEN buried</p>" + "</div>" * deep + "</body></html>", "hostdeephtml" + phase),
             "indexed", "hostdeephtml" + phase),
        Case("malformed.json", b'{"title": "x", "body": "unterminated', "skipped", reason="malformed JSON"),
        Case("array.json", b"[1, 2]", "skipped", reason="JSON is a list"),
        Case("surrogate.json", b'{"title": "Lone \\ud800 surrogate", "body": "hostsurrogate' + phase.encode() + b' \\udcff \\u0000 text"}', "indexed", "hostsurrogate" + phase),
        Case("broken-yaml.md", _with_token("---\ntitle: [unclosed\n: : :\n---\n\nTOKEN body after broken YAML.\n", "hostbrokenyaml" + phase),
             "indexed", "hostbrokenyaml" + phase),
        Case("yaml-bomb.md", _with_token("---\n" + "\n".join(bomb) + "\ntitle: *g\n---\n\nTOKEN body after a bomb.\n", "hostyamlbomb" + phase),
             "indexed", "hostyamlbomb" + phase),
        Case("with space.txt", _with_token("Spaces\n\nTOKEN\n", "hostspace" + phase), "indexed", "hostspace" + phase),
        Case("quote's \"double\".txt", _with_token("Quotes\n\nTOKEN\n", "hostquote" + phase), "indexed", "hostquote" + phase),
        Case("new\nline.txt", _with_token("Newline\n\nTOKEN\n", "hostnewline" + phase), "indexed", "hostnewline" + phase),
        Case("Новости рынка.txt", _with_token("Рынок\n\nTOKEN рынок растёт.\n", "hostcyrillic" + phase), "indexed", "hostcyrillic" + phase, text="рынок растёт"),
        Case("市场新闻.txt", _with_token("市场\n\nTOKEN 市场新闻\n", "hostcjk" + phase), "indexed", "hostcjk" + phase),
        Case("أخبار.md", _with_token("# أخبار\n\nTOKEN السوق\n", "hostarabic" + phase), "indexed", "hostarabic" + phase),
        Case("<svg onload=alert(1)>.txt", _with_token("<script>alert(1)</script>\n\nTOKEN\n", "hostxssname" + phase), "indexed", "hostxssname" + phase),
        Case("loop-a", None, "ignored"),  # symlink loop loop-a -> loop-b -> loop-a
        Case("up/parent", None, "ignored"),  # a symlink to the folder's parent directory
        Case("fifo.txt", None, "not indexed"),  # reading a FIFO would block the writer forever; the watcher lists it as skipped
        Case(os.fsdecode(b"caf\xe9-latin1-name.txt"), b"Latin-1 name\n\nbody\n", "ignored"),
    ]


def materialize(root: Path, cases: list[Case]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for case in cases:
        path = root / case.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if case.name == "big-50mb.txt":
            with path.open("wb") as handle:  # 50 MB on disk as far as stat is concerned, written fast
                handle.seek(50 * MB - 1)
                handle.write(b"x")
        elif case.name == "loop-a":
            (root / "loop-b").symlink_to("loop-a")
            path.symlink_to("loop-b")
        elif case.name == "up/parent":
            path.symlink_to("../..")
        elif case.name == "fifo.txt":
            os.mkfifo(path)
        else:
            path.write_bytes(case.content or b"")


def good_files(root: Path, count: int) -> dict[str, str]:
    """id -> token of ordinary articles that must stay searchable beside the hostile ones."""
    tokens = {}
    for number in range(count):
        token = f"good{root.name}{number:04d}"
        path = root / f"good/{token}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(article_text(token), encoding="utf-8")
        tokens[path.relative_to(root.parent).as_posix()] = token
    return tokens


def search_ids(port: int, q: str) -> list[str]:
    reply = get(port, "/api/search?" + urllib.parse.urlencode({"q": q, "size": 50}))
    assert reply.status == 200, reply.text
    return [hit["id"] for hit in reply.json()["hits"]]


def check_outcomes(port: int, index_dir: Path, prefix: str, cases: list[Case]) -> None:
    """Every case against its expected outcome; all problems reported together."""
    health = get(port, "/healthz").json()
    skipped = health.get("skipped", {})
    operator = status_json(index_dir).get("skipped", {})
    problems = []
    for case in cases:
        doc_id = f"{prefix}/{case.name}"
        if case.outcome == "indexed":
            if doc_id not in search_ids(port, case.token):
                problems.append(f"{doc_id!r} not searchable by {case.token}")
                continue
            for route in ("/api/doc/", "/doc/"):
                doc = get(port, route + urllib.parse.quote(doc_id))
                if doc.status != 200:
                    problems.append(f"{route}{doc_id!r} answers {doc.status}")
                elif case.text and case.text not in doc.text and case.text not in json.dumps(doc.json(), ensure_ascii=False):
                    problems.append(f"{doc_id!r} lost {case.text!r}")
        elif case.outcome == "skipped":
            if case.reason not in skipped.get(doc_id, ""):
                problems.append(f"{doc_id!r}: /healthz skipped says {skipped.get(doc_id)!r}")
            if case.reason not in operator.get(doc_id, ""):
                problems.append(f"{doc_id!r}: searchd status says {operator.get(doc_id)!r}")
        elif case.outcome == "ignored" and doc_id in skipped:
            problems.append(f"{doc_id!r} should be ignored, is listed as skipped: {skipped[doc_id]!r}")
    ids = {hit for q in ("lol", "loop", "parent") for hit in search_ids(port, q)}
    problems += [f"{i!r} indexed through a symlink" for i in ids if i.startswith((f"{prefix}/loop-", f"{prefix}/up/"))]
    assert not problems, "\n".join(problems)


def test_hostile_files_at_startup_and_live(tmp_path: Path, spawn) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    materialize(folder / "boot", hostile_cases("boot"))
    good = good_files(folder / "goodboot", 30)
    server = spawn("serve", folder, index_dir)
    server.wait_ready().wait_caught_up(timeout=120)
    check_outcomes(server.port, index_dir, "boot", hostile_cases("boot"))
    operator_text = cli("status", "--index", str(index_dir)).stdout  # the human-readable form too
    assert "boot/binary.txt: binary data, not text" in operator_text, operator_text
    assert "boot/big-50mb.txt: too large (50.0 MB > limit 10.0 MB)" in operator_text, operator_text

    # The same files again, now arriving while the daemon watches; plus files deleted at once.
    cases = hostile_cases("live")
    materialize(folder / "live", cases)
    good.update(good_files(folder / "goodlive", 30))
    vanishing = [folder / "live" / f"vanish{n}.txt" for n in range(200)]
    for path in vanishing:
        path.write_text(article_text(path.stem))
    for path in vanishing:
        path.unlink()  # most are gone before the daemon reads them; some in between
    wait_until(lambda: all(search_ids(server.port, token) == [doc_id] for doc_id, token in good.items()), 60,
               what="every good file searchable")
    wait_until(lambda: _live_settled(server.port, cases), 60, what="live hostile files settled")
    server.wait_caught_up(timeout=60)
    check_outcomes(server.port, index_dir, "live", cases)
    assert search_ids(server.port, "vanish0 OR vanish199 OR vanish100") == []

    # A skipped file that is repaired gets indexed and leaves the skipped list; one deleted leaves it too.
    (folder / "live" / "empty.txt").write_text(article_text("repairedempty"))
    (folder / "live" / "binary.txt").unlink()
    wait_until(lambda: search_ids(server.port, "repairedempty") == ["live/empty.txt"], 30, what="repaired file indexed")
    skipped = server.wait_caught_up(timeout=30)["skipped"]
    assert "live/empty.txt" not in skipped and "live/binary.txt" not in skipped, skipped
    assert "boot/binary.txt" in skipped
    server.check_alive()
    assert "Traceback" not in server.log(), server.log()[-3000:]


def _live_settled(port: int, cases: list[Case]) -> bool:
    skipped = get(port, "/healthz").json().get("skipped", {})
    return all(
        (case.outcome != "indexed" or f"live/{case.name}" in search_ids(port, case.token))
        and (case.outcome != "skipped" or f"live/{case.name}" in skipped)
        for case in cases
    )


@pytest.mark.slow
def test_ten_megabyte_single_line(tmp_path: Path, spawn) -> None:
    """1.4 million words on one line: indexed whole (the last word is found), searched in bounded
    time, and the daemon keeps indexing other files after it."""
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    folder.mkdir()
    (folder / "line-10mb.txt").write_bytes((b"filler " * 1_400_000)[: 9_800_000] + b" hostlongline\n")
    server = spawn("serve", folder, index_dir)
    server.wait_ready().wait_caught_up(timeout=120)
    started = time.monotonic()
    assert search_ids(server.port, "hostlongline") == ["line-10mb.txt"]
    search_seconds = time.monotonic() - started
    assert get(server.port, "/doc/line-10mb.txt").status == 200
    (folder / "after.txt").write_text(article_text("afterlongline"))
    wait_until(lambda: search_ids(server.port, "afterlongline") == ["after.txt"], 30, what="file after the long line")
    print(f"\n10 MB single line: search with snippet took {search_seconds:.2f}s")
    assert search_seconds < 10


@pytest.mark.slow
@pytest.mark.timeout(400)  # a busy shared machine can double the usual time
def test_ten_thousand_files_in_one_directory(tmp_path: Path, spawn) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    flat = folder / "flat"
    flat.mkdir(parents=True)
    count = 10_000
    for number in range(count):
        (flat / f"n{number:05d}.txt").write_text(article_text(f"flat{number:05d}"), encoding="utf-8")
    started = time.monotonic()
    server = spawn("serve", folder, index_dir)
    server.wait_ready()
    health = server.wait_caught_up(timeout=90)
    elapsed = time.monotonic() - started
    assert health["documents"] == count
    for number in random.Random(1).sample(range(count), 15):
        assert search_ids(server.port, f"flat{number:05d}") == [f"flat/n{number:05d}.txt"]
    # A live burst into the same crowded directory is picked up too.
    for number in range(count, count + 200):
        (flat / f"n{number:05d}.txt").write_text(article_text(f"flat{number:05d}"), encoding="utf-8")
    wait_until(lambda: get(server.port, "/healthz").json()["documents"] == count + 200, 60, what="burst indexed")
    print(f"\n10,000 files in one directory: searchable after {elapsed:.1f}s (start-up included)")
    server.check_alive()

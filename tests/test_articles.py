"""Parsers: every format, every encoding, and the files that must be skipped with a reason.

All inputs are real files written into tmp_path and read through `read_article`, the same call
the reconcile and the daemon make.
"""

from __future__ import annotations

import codecs
import json
import os
import time
from pathlib import Path

import pytest

from searchd.articles import Skip, read_article
from searchd.folder import FileRules, walk

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "seeds" / "world" / "us-russia-talks-saudi-arabia.txt"
LIMIT = 10 * 1024 * 1024


def parse(root: Path, name: str, content: str | bytes, limit: int = LIMIT):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return read_article(root, path, limit)


def skip_reason(root: Path, name: str, content: str | bytes, limit: int = LIMIT) -> str:
    with pytest.raises(Skip) as caught:
        parse(root, name, content, limit)
    return caught.value.reason


# --- the seed article ----------------------------------------------------------------------------

def test_seed_article_fields_and_each_repeated_paragraph_once() -> None:
    article = read_article(REPO / "seeds", SEED, LIMIT)
    assert article.id == "world/us-russia-talks-saudi-arabia.txt"
    assert article.title == "Diplomatic Resurgence: U.S. and Russia Seek Common Ground"
    assert article.summary.startswith("Top officials from the U.S. and Russia have initiated discussions")
    assert article.subtitle == "U.S.-Russia Talks on Ukraine Signal Shift in Relations"
    assert article.category == "world"
    lines = [line.strip() for line in SEED.read_text(encoding="utf-8").split("\n")[5:] if line.strip()]
    unique = list(dict.fromkeys(lines))
    assert len(lines) > len(unique), "the seed is expected to repeat paragraphs"
    assert list(article.body) == unique
    assert any("Zelensky" in p for p in article.body)


# --- every format ----------------------------------------------------------------------------------

def test_txt_title_blank_line_layout(tmp_path: Path) -> None:
    article = parse(tmp_path, "news/plain.txt", "A Plain Title\n\nFirst paragraph here.\n\nSecond one.\n")
    assert (article.title, article.body, article.category) == ("A Plain Title", ("First paragraph here.", "Second one."), "news")


def test_txt_without_title_line_is_all_text(tmp_path: Path) -> None:
    article = parse(tmp_path, "notitle.txt", "just some words\nand more words on a second line\n")
    assert article.title == ""
    assert "just some words" in article.text and "second line" in article.text
    assert article.display_title.startswith("just some words")


def test_markdown_front_matter(tmp_path: Path) -> None:
    article = parse(tmp_path, "sci/a.md", (
        "---\ntitle: Front Title\ndate: 2024-05-06\ntags: [Climate, cities]\nauthor: Ann\n"
        "summary: Short summary.\n---\n\n# Heading Ignored For Title\n\nSome **bold** and a [link](http://x).\n"
    ))
    assert article.title == "Front Title"
    assert article.summary == "Short summary."
    assert article.tags == ("climate", "cities")
    assert article.author == "Ann"
    assert article.date is not None and article.date.date().isoformat() == "2024-05-06"
    assert "Some bold and a link." in article.body


def test_markdown_broken_yaml_is_indexed_without_front_matter(tmp_path: Path) -> None:
    article = parse(tmp_path, "b.md", "---\ntitle: [unclosed\ndate: : :\n---\n\nThe body survives broken YAML.\n")
    assert "The body survives broken YAML." in (article.title, *article.body)
    assert "not valid YAML" in article.extra["warning"]


def test_markdown_yaml_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdef", "bcdefg"):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb = "---\n" + "\n".join(levels) + "\ntitle: *g\n---\n\nbomb body words\n"
    started = time.perf_counter()
    article = parse(tmp_path, "bomb.md", bomb)
    assert time.perf_counter() - started < 1.0
    assert "aliases" in article.extra["warning"]
    assert "bomb body words" in (article.title, *article.body)


def test_markdown_python_tag_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    article = parse(tmp_path, "py.md", f"---\ntitle: !!python/object/apply:os.system ['touch {marker}']\n---\n\nsafe body\n")
    assert not marker.exists()
    assert "not valid YAML" in article.extra["warning"]


def test_markdown_pathological_inline_markup_is_linear(tmp_path: Path) -> None:
    # Each of these lines made the old inline-markup regexes backtrack for minutes.
    for name, line in {"emph": "*a " * 300_000, "links": "[" * 200_000, "tags": "<a" * 200_000}.items():
        started = time.perf_counter()
        article = parse(tmp_path, f"{name}.md", "# T\n\n" + line + "\n")
        assert time.perf_counter() - started < 5.0, name
        assert article.title == "T" and article.body


def test_html_via_extractor(tmp_path: Path) -> None:
    page = (
        "<html><head><title>Page Title</title><meta name='description' content='Desc here.'>"
        "<meta name='keywords' content='alpha, beta'></head><body><nav>menu menu</nav><article>"
        "<h1>Page Title</h1><p>" + "The main text of the page is long enough to be kept. " * 5 + "</p>"
        "<p>A second paragraph with more words in it for the extractor.</p></article></body></html>"
    )
    article = parse(tmp_path, "tech/p.html", page)
    assert article.title == "Page Title"
    assert article.summary == "Desc here."
    assert any("main text of the page" in p for p in article.body)
    assert article.format == "html"


def test_html_nested_deeper_than_libxml2_keeps_its_text(tmp_path: Path) -> None:
    depth = 5000
    page = "<html><head><title>Deep</title></head><body>" + "<div>" * depth + "<p>buried treasure words</p>" + "</div>" * depth + "</body></html>"
    article = parse(tmp_path, "deep.html", page)
    assert article.title == "Deep"
    assert "buried treasure words" in article.text


def test_html_with_a_10mb_text_node(tmp_path: Path) -> None:
    # libxml2 refuses text nodes over 10,000,000 bytes: the extractor then finds nothing at all.
    article = parse(tmp_path, "big.html", "<html><body><p>" + "word " * 2_000_001 + "last</p></body></html>")
    assert article.text.endswith("last")


def test_json_article(tmp_path: Path) -> None:
    article = parse(tmp_path, "biz/a.json", json.dumps({
        "title": "Json Title", "text": "Para one.\n\nPara two.", "date": "2023-01-02",
        "url": "https://example.org/x", "tags": ["one", "two"],
    }))
    assert (article.title, article.body, article.url, article.tags) == (
        "Json Title", ("Para one.", "Para two."), "https://example.org/x", ("one", "two"))
    assert article.date is not None and article.date.year == 2023


def test_json_escapes_cannot_smuggle_nul_or_lone_surrogates(tmp_path: Path) -> None:
    # A lone surrogate cannot be encoded as UTF-8: left in, it would fail every commit after it.
    article = parse(tmp_path, "s.json", '{"title": "t\\ud800x\\u0000y", "body": "lone \\udcff here"}')
    assert article.title == "t\ufffdxy"
    article.text.encode("utf-8")


@pytest.mark.parametrize("content, reason", [
    ('{"title": "x", "body": "unterminated', "malformed JSON"),
    ("[1, 2, 3]", "JSON is a list"),
    ("[" * 100_000 + "]" * 100_000, "malformed JSON"),
    ('{"title": {"a": 1}, "body": {"b": 2}}', "no text found"),
])
def test_json_that_is_not_an_article_is_skipped(tmp_path: Path, content: str, reason: str) -> None:
    assert reason in skip_reason(tmp_path, "bad.json", content)


# --- encodings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_legacy_western_text_keeps_its_accents(tmp_path: Path, encoding: str) -> None:
    text = "Café résumé\n\nLe garçon a mangé une crème brûlée à Noël, déjà.\n"
    if encoding == "cp1252":
        text += "\n“Quoted” — €5.\n"
    article = parse(tmp_path, "legacy.txt", text.encode(encoding))
    assert article.title == "Café résumé"
    assert "crème brûlée à Noël" in article.text
    if encoding == "cp1252":
        assert "“Quoted” — €5." in article.text


def test_latin1_seed_file(tmp_path: Path) -> None:
    article = read_article(REPO / "seeds", REPO / "seeds" / "culture" / "cafe-culture-latin1.txt", LIMIT)
    assert article.title == "Café Culture Returns to the Old Town"


@pytest.mark.parametrize("bom, encoding", [
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF8, "utf-8"),
])
def test_text_with_byte_order_mark(tmp_path: Path, bom: bytes, encoding: str) -> None:
    article = parse(tmp_path, "bom.txt", bom + "Überschrift Straße\n\nText mit Umlauten: äöü ß.\n".encode(encoding))
    assert article.title == "Überschrift Straße"
    assert article.body == ("Text mit Umlauten: äöü ß.",)


def test_utf16_without_bom_is_text_not_binary(tmp_path: Path) -> None:
    article = parse(tmp_path, "nobom.txt", "Titel\n\nKörper des Textes.\n".encode("utf-16-le"))
    assert article.title == "Titel"


def test_invalid_utf8_is_decoded_not_dropped(tmp_path: Path) -> None:
    article = parse(tmp_path, "mixed.txt", b"Title here\n\nSome text \xff\xfe\xc3\x28 more words caf\xe9 end\n")
    assert article.title == "Title here"
    assert "more words café end" in article.text


# --- skipped with a reason -------------------------------------------------------------------------

def test_binary_data_named_txt_is_skipped(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40
    assert skip_reason(tmp_path, "image.txt", png) == "binary data, not text"


@pytest.mark.parametrize("content", [b"", b"  \n\n\t \n"])
def test_empty_files_are_skipped(tmp_path: Path, content: bytes) -> None:
    assert skip_reason(tmp_path, "empty.txt", content) == "empty file"


def test_oversized_file_is_skipped_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: 50 MB without writing 50 MB
    with pytest.raises(Skip) as caught:
        read_article(tmp_path, path, LIMIT)
    assert caught.value.reason == "too large (50.0 MB > limit 10.0 MB)"


def test_configurable_size_limit(tmp_path: Path) -> None:
    assert skip_reason(tmp_path, "a.txt", "Title\n\n" + "x" * 2000, limit=1000).startswith("too large")


def test_ten_megabyte_single_line_is_indexed(tmp_path: Path) -> None:
    line = ("word " * 2_000_000)[: 10 * 1024 * 1024 - 10] + "finalword"
    article = parse(tmp_path, "line.txt", line)
    assert article.text.endswith("finalword")


def test_unsupported_and_not_regular_files(tmp_path: Path) -> None:
    assert skip_reason(tmp_path, "x.pdf", b"%PDF-1.4").startswith("unsupported file type")
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(Skip, match="not a regular file"):
        read_article(tmp_path, tmp_path / "dir.txt", LIMIT)


def test_file_deleted_between_walk_and_parse(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").write_text("Title\n\nbody\n")
    [(article_id, path, _stamp)] = list(walk(tmp_path, FileRules()))
    path.unlink()
    with pytest.raises(Skip, match="vanished while being read"):
        read_article(tmp_path, path, LIMIT)


# --- names and the walk --------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "with space.txt", "quote's \"double\".txt", "new\nline.txt", "Рынок.txt", "市场新闻.txt", "سوق.txt",
    "<script>alert(1)<\\script>.txt",
])
def test_hostile_names_keep_their_id(tmp_path: Path, name: str) -> None:
    article = parse(tmp_path, f"cat/{name}", "Title\n\nbody words\n")
    assert article.id == f"cat/{name}"
    ids = [article_id for article_id, _, _ in walk(tmp_path, FileRules())]
    assert ids == [f"cat/{name}"]


def test_undecodable_file_name_is_ignored_not_fatal(tmp_path: Path) -> None:
    # A Latin-1 name on a UTF-8 system: its id could not be stored or sent as JSON.
    (tmp_path / "good.txt").write_text("Good\n\nbody\n")
    Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.txt")).write_text("Bad name\n\nbody\n")
    assert [article_id for article_id, _, _ in walk(tmp_path, FileRules())] == ["good.txt"]


def test_symlink_loop_does_not_hang_the_walk(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("A\n\nbody\n")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    (tmp_path / "x").symlink_to(tmp_path / "y")
    (tmp_path / "y").symlink_to(tmp_path / "x")
    assert [i for i, _, _ in walk(tmp_path, FileRules())] == ["sub/a.txt"]
    followed = [i for i, _, _ in walk(tmp_path, FileRules(follow_symlinks=True))]
    assert followed == ["sub/a.txt"]  # the loop back to the root is seen once, then refused


def test_ignored_names(tmp_path: Path) -> None:
    for name in (".hidden.txt", "a.txt~", "a.swp", "b.tmp", "c.part", "d.crdownload", "._e.txt", ".DS_Store", "f.pdf"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "g.txt").write_text("x")
    (tmp_path / "kept.txt").write_text("x")
    assert [i for i, _, _ in walk(tmp_path, FileRules())] == ["kept.txt"]


def test_a_file_that_grew_after_its_size_was_read_is_read_whole_or_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The size a reader sees first can be stale (a writer still appending): what is read is the
    whole file, or a clear skip when it grew past the limit, never the first stat's worth."""
    path = tmp_path / "growing.txt"
    path.write_text("Growing\n\n" + "word " * 300)
    real_stat = Path.stat

    def stale(self: Path, *args, **kwargs) -> os.stat_result:
        found = real_stat(self, *args, **kwargs)
        if self != path:
            return found
        fields = list(found)
        fields[6] = 10  # st_size as it was when only the first bytes had been written
        extra = {name: getattr(found, name) for name in ("st_atime_ns", "st_mtime_ns", "st_ctime_ns")}
        return os.stat_result(fields, extra)

    monkeypatch.setattr(Path, "stat", stale)
    assert path.stat().st_size == 10
    assert read_article(tmp_path, path, LIMIT).text.count("word") == 300
    with pytest.raises(Skip) as caught:
        read_article(tmp_path, path, 1000)
    assert caught.value.reason == "too large (grew past limit 0.0 MB while being read)"

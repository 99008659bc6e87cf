"""A file in the article folder -> an `Article` record.

One small parser per format (.txt, .md, .html, .json). Knows nothing of the index, the web or
the watcher: it only reads bytes and returns plain data, or raises `Skip` with a reason a person
can act on.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".json")


class Skip(Exception):
    """The file cannot become an article; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FileStamp:
    """What is cheap to learn about a file without reading it: decides whether to re-read it."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Article:
    id: str  # POSIX path relative to the folder: the only handle any caller ever gets
    title: str
    summary: str = ""
    subtitle: str = ""
    body: tuple[str, ...] = ()
    date: datetime | None = None
    category: str = ""
    tags: tuple[str, ...] = ()
    url: str = ""
    author: str = ""
    format: str = ""
    size: int = 0
    mtime_ns: int = 0
    checksum: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def text(self) -> str:
        return "\n\n".join(self.body)

    @property
    def display_title(self) -> str:
        """The title to show: a real title, else the first words of the text, else the file name."""
        if self.title:
            return self.title
        for candidate in (self.summary, self.subtitle, *self.body):
            if candidate.strip():
                return _shorten(candidate, 90)
        return PurePosixPath(self.id).name


# --- reading and decoding -------------------------------------------------------------------

def article_id(root: Path, path: Path) -> str:
    return PurePosixPath(*path.relative_to(root).parts).as_posix()


def category_of(article_id_: str) -> str:
    """The first folder level is the category; files at the top level have none."""
    parts = PurePosixPath(article_id_).parts
    return parts[0] if len(parts) > 1 else ""


def is_supported(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES)


def stamp_of(stat: os.stat_result) -> FileStamp:
    return FileStamp(size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def read_article(root: Path, path: Path, max_bytes: int) -> Article:
    """Read and parse one file. Raises `Skip` for anything that is not an indexable article."""
    aid = article_id(root, path)
    parser = _PARSERS.get(path.suffix.lower())
    if parser is None:
        raise Skip(f"unsupported file type {path.suffix or '(none)'}")
    try:
        stat = path.stat()
        if not path.is_file():
            raise Skip("not a regular file")
        if stat.st_size > max_bytes:
            raise Skip(f"too large ({_megabytes(stat.st_size)} > limit {_megabytes(max_bytes)})")
        with path.open("rb") as handle:
            # As much as stat said, and the rest only if the file grew since: read(n) sets aside
            # n bytes first, and max_bytes is megabytes.
            data = handle.read(min(stat.st_size, max_bytes) + 1)
            if len(data) > stat.st_size:
                data += handle.read(max_bytes + 1 - len(data))
    except FileNotFoundError:
        raise Skip("vanished while being read") from None
    except PermissionError:
        raise Skip("permission denied") from None
    except IsADirectoryError:
        raise Skip("not a regular file") from None
    except OSError as exc:
        raise Skip(f"unreadable ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise Skip(f"too large (grew past limit {_megabytes(max_bytes)} while being read)")
    if not data.strip():
        raise Skip("empty file")
    text = decode(data)
    fields_ = _sanitize_fields(parser(text))
    body = dedupe_paragraphs(fields_.pop("body", ()), exclude=(fields_.get("title", ""), fields_.get("subtitle", ""), fields_.get("summary", "")))
    if not fields_.get("title") and not body and not fields_.get("summary"):
        raise Skip("no text found")
    return Article(
        id=aid,
        body=tuple(body),
        category=category_of(aid),
        format=path.suffix.lower().lstrip("."),
        size=len(data),
        mtime_ns=stat.st_mtime_ns,
        checksum=hashlib.blake2b(data, digest_size=16).hexdigest(),
        **fields_,
    )


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode(data: bytes) -> str:
    """Bytes -> text. UTF-8 and BOM-marked files first; legacy single-byte Western files
    (Latin-1/cp1252, common in older news corpora) next; detection only for the rest.
    Raises `Skip` for binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _clean(data.decode(encoding))
            except UnicodeDecodeError:
                raise Skip(f"invalid {encoding} text after its byte-order mark") from None
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return _clean(utf16)
    if _looks_binary(data):
        raise Skip("binary data, not text")
    try:
        return _clean(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    high = sum(1 for byte in data if byte >= 0x80)
    # A mostly-ASCII file with a few high bytes is Western European text; statistical detectors
    # guess wildly on so little evidence (BBC's sport/199.txt comes out as Shift-JIS).
    if high / len(data) < 0.3:
        return _clean(_decode_cp1252(data))
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None:
        return _clean(str(best))
    return _clean(_decode_cp1252(data))


def _utf16_without_bom(data: bytes) -> str | None:
    """Windows tools write UTF-16 without a byte-order mark too: mostly-Latin text then has a NUL
    in every other byte, which would otherwise read as binary data."""
    sample = data[:4096]
    if len(data) % 2 or len(sample) < 4:
        return None
    half = len(sample) // 2
    for zeros, letters, encoding in ((sample[1::2], sample[0::2], "utf-16-le"), (sample[0::2], sample[1::2], "utf-16-be")):
        if zeros.count(0) >= 0.9 * half and letters.count(0) == 0:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    return None


def _decode_cp1252(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined: Latin-1 maps them all
        return data.decode("latin-1")


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    controls = sum(1 for byte in sample if byte < 0x20 and byte not in b"\t\n\r\f\v\x1b")
    return controls / len(sample) > 0.1


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", _CONTROL.sub("", text))


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _sanitize(text: str) -> str:
    """JSON and YAML escapes can smuggle in what decoding never produces: control characters and
    lone surrogates (which cannot be encoded as UTF-8, so the index commit would fail)."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def _sanitize_fields(fields_: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in fields_.items():
        if isinstance(value, str):
            value = _sanitize(value)
        elif isinstance(value, (list, tuple)) and name in ("body", "tags"):
            value = type(value)(_sanitize(item) for item in value)
        clean[name] = value
    return clean


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


# --- paragraphs ------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def dedupe_paragraphs(paragraphs: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Keep the first copy of each paragraph (scraped pages repeat them, which would double term
    frequencies and repeat in snippets); drop paragraphs that only repeat the title or summary."""
    seen = {_normal(text) for text in exclude if text}
    kept = []
    for paragraph in paragraphs:
        key = _normal(paragraph)
        if key and key not in seen:
            seen.add(key)
            kept.append(paragraph.strip())
    return kept


def split_blocks(text: str) -> list[str]:
    """Blank-line separated blocks -> paragraphs. Inside a block, hard-wrapped prose is joined
    into one paragraph; long lines (one paragraph a line, as scraped text has) stay separate;
    indented lines (tables) keep their line breaks."""
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line.rstrip() for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        if any(len(line) - len(line.lstrip()) >= 3 for line in lines[1:]):
            paragraphs.append("\n".join(lines))
        elif len(lines) > 1 and all(len(line) <= 100 for line in lines[:-1]):
            paragraphs.append(" ".join(line.strip() for line in lines))
        else:
            paragraphs.extend(line.strip() for line in lines)
    return paragraphs


def _shorten(text: str, limit: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + "…"


# --- formats ---------------------------------------------------------------------------------

def parse_txt(text: str) -> dict[str, Any]:
    lines = text.split("\n")
    stripped = [line.strip() for line in lines]
    # The scraped-news layout: summary, headline, blank, headline again, sub-headline, paragraphs.
    if (
        len(lines) >= 5
        and stripped[0]
        and stripped[1]
        and not stripped[2]
        and stripped[3] == stripped[1]
    ):
        return {
            "summary": stripped[0],
            "title": stripped[1],
            "subtitle": stripped[4],
            "body": split_blocks("\n".join(lines[5:])),
        }
    # The common layout: a title line, a blank line, the text. Without the blank line the file
    # is all text and has no title of its own.
    first = next((i for i, line in enumerate(stripped) if line), None)
    if first is None:
        return {"title": "", "body": []}
    has_title = first + 1 < len(lines) and not stripped[first + 1] and len(stripped[first]) <= 200
    if first == 0 and has_title:
        return {"title": stripped[0], "body": split_blocks("\n".join(lines[1:]))}
    return {"title": "", "body": split_blocks("\n".join(lines[first:]))}


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s+|$)")
# Every pattern excludes its own opening character from what it spans, so each scan stops at the
# next candidate: linear time on any line (a 10 MB line of "[[[[" or "*a *a" must not hang).
_MD_INLINE = [
    (re.compile(r"!\[([^\[\]\n]*)\]\([^()\n]*\)"), r"\1"),  # images: keep the alt text
    (re.compile(r"\[([^\[\]\n]+)\]\([^()\n]*\)"), r"\1"),  # links: keep the link text
    (re.compile(r"<[^<>\n]+>"), ""),  # inline HTML tags
    (re.compile(r"\*\*(?=\S)([^*\n]+)(?<=\S)\*\*"), r"\1"),
    (re.compile(r"__(?=\S)([^_\n]+)(?<=\S)__"), r"\1"),
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+)(?<=\S)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+)(?<=\S)_(?![\w_])"), r"\1"),
    (re.compile(r"`([^`\n]+)`"), r"\1"),
]
_MD_LINE_PREFIX = re.compile(r"^\s*(?:>\s?|[-*+]\s+|\d+[.)]\s+)")


def _markdown_to_paragraphs(markdown: str) -> tuple[str, list[str]]:
    """Markdown -> (first heading, plain paragraphs). Search needs the words, not the layout."""
    heading = ""
    lines = []
    for line in markdown.split("\n"):
        if line.strip().startswith("```") or set(line.strip()) <= set("-=*_") and line.strip():
            lines.append("")
            continue
        match = _MD_HEADING.match(line)
        if match:
            text = line[match.end():].rstrip().rstrip("#").rstrip()  # "## Title ##" -> "Title"
            if not heading:
                heading = text
                lines.extend(["", ""])
                continue
            lines.extend(["", text, ""])
            continue
        if _MD_LINE_PREFIX.match(line):  # each list item or quote line is a paragraph of its own
            lines.append("")
            line = _MD_LINE_PREFIX.sub("", line)
        for pattern, replacement in _MD_INLINE:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return heading, split_blocks("\n".join(lines))


@lru_cache(maxsize=1)
def _no_alias_loader() -> type:
    """PyYAML's safe loader, refusing aliases: a few hundred bytes of nested aliases ("billion
    laughs") would otherwise expand to millions of strings."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases are not accepted in front matter", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def _load_front_matter(source: str) -> Any:
    loader = _no_alias_loader()(source)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_md(text: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    content = text
    match = _FRONT_MATTER.match(text)
    warning = ""
    if match:
        content = text[match.end():]
        import yaml

        try:
            loaded = _load_front_matter(match.group(1) or "")
        except yaml.YAMLError as exc:
            loaded = None
            warning = f"front matter is not valid YAML ({str(exc).splitlines()[0]}); indexed without it"
        except RecursionError:
            loaded = None
            warning = "front matter nests too deeply; indexed without it"
        if isinstance(loaded, dict):
            meta = {str(key).lower(): value for key, value in loaded.items()}
        elif loaded is not None and not warning:
            warning = "front matter is not a mapping; indexed without it"
    heading, paragraphs = _markdown_to_paragraphs(content)
    title = _text_value(meta.get("title")) or heading
    if not title and paragraphs and len(paragraphs[0]) <= 120:
        title, paragraphs = paragraphs[0], paragraphs[1:]
    result = {
        "title": title,
        "summary": _text_value(meta.get("summary") or meta.get("description")),
        "subtitle": _text_value(meta.get("subtitle")),
        "body": paragraphs,
        "date": parse_date(meta.get("date")),
        "tags": parse_tags(meta.get("tags") or meta.get("keywords")),
        "url": _text_value(meta.get("url")),
        "author": _text_value(meta.get("author")),
    }
    if warning:
        result["extra"] = {"warning": warning}
    return result


def parse_html(text: str) -> dict[str, Any]:
    import trafilatura

    if _nests_too_deeply(text):
        # libxml2 stops building the tree at depth 256 and drops everything below it, so the
        # extractor would index an empty page; a flat reading keeps every word.
        title, paragraphs = _flat_html_text(text)
        if not title and not paragraphs:
            raise Skip("HTML has no readable text")
        return {"title": title, "body": paragraphs, "extra": {"warning": "HTML nests too deeply for the extractor; indexed its plain text"}}

    try:
        doc = trafilatura.bare_extraction(
            text, with_metadata=True, include_comments=False, include_tables=True, favor_recall=True
        )
    except Exception as exc:  # the extractor's failure on hostile markup is a skip, not a crash
        raise Skip(f"HTML could not be parsed ({type(exc).__name__})") from None
    if doc is None:
        # The extractor found no main text (libxml2 also refuses text nodes over 10 MB): read
        # the page flat rather than lose it.
        title, paragraphs = _flat_html_text(text)
        if not title and not paragraphs:
            raise Skip("HTML has no readable text")
        return {"title": title, "body": paragraphs}
    paragraphs = [line for line in (doc.text or "").split("\n") if line.strip()]
    title = _text_value(doc.title)
    if paragraphs and _normal(paragraphs[0]) == _normal(title):
        paragraphs = paragraphs[1:]
    tags = list(parse_tags(doc.tags)) + [t for t in parse_tags(doc.categories) if t not in (doc.tags or [])]
    return {
        "title": title,
        "summary": _text_value(doc.description),
        "body": paragraphs,
        "date": parse_date(doc.date),
        "tags": tuple(dict.fromkeys(tags)),
        "url": _text_value(doc.url),
        "author": _text_value(doc.author),
    }


def _nests_too_deeply(text: str) -> bool:
    import lxml.html

    parser = lxml.html.HTMLParser()
    try:
        lxml.html.fromstring(text, parser=parser)
    except Exception:
        return False  # not parseable at all: the extractor and its fallback decide
    return any("Excessive depth" in entry.message for entry in parser.error_log)


_BLOCK_TAGS = frozenset(
    "p div br li ul ol h1 h2 h3 h4 h5 h6 tr td th table section article header footer blockquote pre".split()
)
_INVISIBLE_TAGS = frozenset(("script", "style", "noscript", "template"))


class _FlatText(HTMLParser):
    """Collects the title and the visible text of any HTML, however deep: a streaming parse that
    keeps no tree, so libxml2's depth and text-node limits do not apply."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: list[str] = []
        self.chunks: list[str] = []
        self.hidden = 0
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in _INVISIBLE_TAGS:
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in _INVISIBLE_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.hidden:
            self.chunks.append(data)


def _flat_html_text(text: str) -> tuple[str, list[str]]:
    """(title, paragraphs) of any HTML."""
    parser = _FlatText()
    parser.feed(text)
    parser.close()
    return _text_value("".join(parser.title)), split_blocks("".join(parser.chunks))


def parse_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Skip(f"malformed JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise Skip("malformed JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise Skip(f"JSON is a {type(data).__name__}, expected an object with title and body")
    data = {str(key).lower(): value for key, value in data.items()}
    body = data.get("body", data.get("text", data.get("content", "")))
    # Paragraph breaks are kept: `_text_value` would fold "one\n\ntwo" into a single paragraph.
    items = body if isinstance(body, list) else [body]
    paragraphs = [p for item in items if isinstance(item, str) for p in split_blocks(item)]
    return {
        "title": _text_value(data.get("title")),
        "summary": _text_value(data.get("summary") or data.get("description")),
        "subtitle": _text_value(data.get("subtitle")),
        "body": paragraphs,
        "date": parse_date(data.get("date") or data.get("published")),
        "tags": parse_tags(data.get("tags") or data.get("keywords")),
        "url": _text_value(data.get("url")),
        "author": _text_value(data.get("author")),
    }


_PARSERS: dict[str, Callable[[str], dict[str, Any]]] = {
    ".txt": parse_txt,
    ".md": parse_md,
    ".markdown": parse_md,
    ".html": parse_html,
    ".htm": parse_html,
    ".json": parse_json,
}


# --- metadata values -------------------------------------------------------------------------

def _text_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_text_value(item) for item in value).strip()
    if isinstance(value, dict):
        return ""
    return _SPACE.sub(" ", str(value)).strip()


def parse_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple, set)) else str(value).split(",")
    tags = []
    for item in items:
        if isinstance(item, (dict, list)):
            continue
        for part in str(item).split(","):
            tag = _SPACE.sub(" ", part).strip().lower()
            if tag and len(tag) <= 100:
                tags.append(tag)
    return tuple(dict.fromkeys(tags))


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d %B %Y", "%B %d, %Y", "%d-%b-%Y %H:%M:%S.%f", "%Y-%m", "%Y")


def parse_date(value: Any) -> datetime | None:
    """Any reasonable date value -> naive UTC datetime; None when it cannot be read."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _naive_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    try:
        return _naive_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value

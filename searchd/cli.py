"""`searchd serve / index / watch / web / search / status`."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import click
import orjson

from .config import Config
from .folder import FileRules
from .engines import open_engine
from .engines.base import EngineUnavailable, IndexBusy, IndexMissing
from .processes import interrupt_on_sigterm
from .search import BadRequest, SearchRequest, Searcher
from .sync import index_once

log = logging.getLogger("searchd")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _config(**overrides: Any) -> Config:
    try:
        config = Config.load(**overrides)
        open_engine(config)  # the engine settings make sense (nothing is opened yet)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _setup_logging(config.log_level)
    return config


def folder_option(f: Callable) -> Callable:
    return click.option("--folder", type=click.Path(path_type=Path), help="Article folder [env SEARCHD_FOLDER; default seeds/]")(f)


def index_option(f: Callable) -> Callable:
    return click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index directory [env SEARCHD_INDEX; default index/]")(f)


def engine_options(f: Callable) -> Callable:
    f = click.option("--source", help="With typesense: this daemon's name; its article ids are NAME/<path> and it "
                                      "owns only those [env SEARCHD_SOURCE; default: none, the whole collection]")(f)
    f = click.option("--collection", help="Typesense collection (an alias) [env SEARCHD_COLLECTION; default articles]")(f)
    f = click.option("--typesense-key", help="Typesense API key [env SEARCHD_TYPESENSE_KEY]")(f)
    f = click.option("--typesense-url", "typesense_urls", metavar="URL[,URL...]",
                     help="Every node of the Typesense cluster [env SEARCHD_TYPESENSE_URL]")(f)
    f = click.option("--engine", type=click.Choice(["whoosh", "typesense"]),
                     help="Search engine [env SEARCHD_ENGINE; default whoosh: a local index]")(f)
    return f


def daemon_options(f: Callable) -> Callable:
    f = click.option("--polling", is_flag=True, default=None, help="Poll the folder instead of using inotify (network shares).")(f)
    f = click.option("--rescan", "rescan_seconds", type=float, help="Seconds between full rescans [default 600].")(f)
    f = click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))(f)
    return f


def web_options(f: Callable) -> Callable:
    f = click.option("--host", help="Address to bind [env SEARCHD_HOST; default 127.0.0.1]")(f)
    f = click.option("--port", type=int, help="Port [env SEARCHD_PORT; default 8080]")(f)
    f = click.option("--workers", type=int,
                     help="Web worker processes [env SEARCHD_WORKERS; default 0: one per core this process may use]")(f)
    f = click.option("--threads", type=int,
                     help="Threads per worker process, for keep-alive and slow clients [env SEARCHD_THREADS; default 8]")(f)
    f = click.option("--token", help="Require this token on every request but /healthz [env SEARCHD_TOKEN]")(f)
    f = click.option("--cors", "cors_origins", metavar="ORIGINS",
                     help="Let these origins (comma-separated, or *) call the JSON API from a browser "
                          "[env SEARCHD_CORS_ORIGINS; default: none]")(f)
    f = click.option("--open-metrics", is_flag=True, default=None,
                     help="Answer /metrics without the token to clients on this machine (a local Prometheus) "
                          "[env SEARCHD_OPEN_METRICS]")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="searchd")
def main() -> None:
    """Full-text search for a folder of articles."""


def _start_daemon(config: Config):
    from .watcher import Daemon

    try:
        return Daemon(config).start()
    except (IndexBusy, EngineUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _serve_http(config: Config, with_daemon: bool) -> None:
    from .serving import ServeError, run

    try:
        run(config, with_daemon)
    except ServeError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("folder_arg", required=False, type=click.Path(path_type=Path))
@folder_option
@index_option
@engine_options
@web_options
@daemon_options
def serve(folder_arg: Path | None, folder: Path | None, **options: Any) -> None:
    """Index FOLDER, keep the index in sync with it, and serve the search page and API (the
    daemon in one process, the web server in --workers processes)."""
    config = _config(folder=folder_arg or folder, **options)
    _serve_http(config, with_daemon=True)


@main.command()
@click.argument("folder_arg", required=False, type=click.Path(path_type=Path))
@folder_option
@index_option
@engine_options
@daemon_options
def watch(folder_arg: Path | None, folder: Path | None, **options: Any) -> None:
    """Run the indexing daemon alone (a separate `searchd web` only reads the index)."""
    config = _config(folder=folder_arg or folder, **options)
    interrupt_on_sigterm()  # before the start: watching a large tree takes a while
    try:
        daemon = _start_daemon(config)
    except KeyboardInterrupt:
        click.echo("searchd: stopping", err=True)
        return
    click.echo(f"searchd: watching {config.folder} into {daemon.engine.describe()} ({daemon.observer_kind}); "
               "Ctrl-C stops", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("searchd: stopping", err=True)
    finally:
        daemon.stop()


@main.command()
@index_option
@engine_options
@web_options
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def web(**options: Any) -> None:
    """Serve the search page and API from an index another process keeps up to date."""
    config = _config(**options)
    _serve_http(config, with_daemon=False)


@main.command("index")
@click.argument("folder_arg", required=False, type=click.Path(path_type=Path))
@folder_option
@index_option
@engine_options
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def index_command(folder_arg: Path | None, folder: Path | None, **options: Any) -> None:
    """Bring the index in line with FOLDER once: add new, update changed, delete vanished files."""
    config = _config(folder=folder_arg or folder, **options)
    if not Path(config.folder).is_dir():
        raise click.ClickException(f"article folder {config.folder} does not exist")
    rules = FileRules(config.include, config.exclude, config.follow_symlinks)
    try:
        with _progress_bar() as progress:
            report = index_once(open_engine(config), Path(config.folder), rules, config.max_file_bytes,
                                batch_size=config.batch_size, progress=progress)
    except (IndexBusy, EngineUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    for article_id, reason in sorted(report.skipped.items()):
        click.echo(f"skipped {article_id}: {reason}", err=True)
    click.echo(report.summary())


class _progress_bar:
    """click's progress bar on a terminal; silence when output goes to a file or a pipe."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __enter__(self) -> Callable[[int, int], None]:
        return self.update

    def update(self, done: int, total: int) -> None:
        if not sys.stderr.isatty() or total < 50:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="indexing", file=sys.stderr, show_pos=True, show_eta=True)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@main.command()
@click.argument("query")
@index_option
@engine_options
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.option("--size", type=int, default=10, show_default=True)
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--sort", type=click.Choice(["relevance", "date"]), default="relevance", show_default=True)
@click.option("--category", default="")
def search(query: str, index_dir: Path | None, as_json: bool, size: int, page: int, sort: str, category: str,
           **options: Any) -> None:
    """Search the index and print the best matches."""
    config = _config(index_dir=index_dir, log_level="WARNING", **options)
    searcher = Searcher(open_engine(config).open_reader())
    try:
        result = searcher.search(SearchRequest(q=query, page=page, size=size, sort=sort, category=category))
    except (BadRequest, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    except (IndexMissing, EngineUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2).decode())
        return
    if result.notice:
        click.echo(f"note: {result.notice}", err=True)
    click.echo(f"{result.total} results ({result.took_ms:.0f} ms)")
    for number, hit in enumerate(result.hits, start=(page - 1) * size + 1):
        click.echo(f"{number:>3}. {hit.title}  [{hit.id}]")
        click.echo(f"     {_plain(hit.snippet)}")


def _plain(snippet: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"</?mark>", "*", snippet))


@main.command()
@index_option
@engine_options
@click.option("--json", "as_json", is_flag=True)
def status(index_dir: Path | None, as_json: bool, **options: Any) -> None:
    """Show documents, segments, pending changes and skipped files."""
    config = _config(index_dir=index_dir, log_level="WARNING", **options)
    engine = open_engine(config)
    reader = engine.open_reader()
    try:
        report = reader.daemon_status()
        stats = asdict(reader.stats())
    except (IndexMissing, EngineUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    daemon_running = engine.writer_running()
    data = {**report, **stats, "daemon_running": daemon_running}
    if not daemon_running:
        data["status"] = "no daemon"
        data["pending"] = 0
        data["progress"] = None
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data["last_commit"])) if data.get("last_commit") else "never"
    click.echo(f"status:      {data.get('status', 'unknown')}")
    click.echo(f"documents:   {data['documents']}")
    click.echo(f"segments:    {data['segments']}")
    click.echo(f"pending:     {data.get('pending', 0)}")
    if data.get("progress"):
        click.echo(f"progress:    {data['progress']['done']:,} of {data['progress']['total']:,} files indexed")
    click.echo(f"last commit: {when}")
    if data.get("observer"):
        click.echo(f"observer:    {data['observer']}  (lag {data.get('lag_seconds', 0):.3f}s)")
    if data.get("error"):
        click.echo(f"error:       {data['error']}")
    skipped = data.get("skipped") or {}
    click.echo(f"skipped:     {len(skipped)}")
    for article_id, reason in skipped.items():
        click.echo(f"  {article_id}: {reason}")


@main.command("eval")
@click.option("--docs", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="Folder of the collection's documents (file name = document id).")
@click.option("--queries", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="qid<TAB>query text, one per line.")
@click.option("--qrels", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="qid<TAB>docid<TAB>grade (or TREC's qid 0 docid grade).")
@click.option("--k", type=click.IntRange(1, 100), default=10, show_default=True, help="Cut-off of nDCG.")
@click.option("--index", "index_dir", type=click.Path(path_type=Path),
              help="Index directory to build or reuse [default: one per folder in the temp directory].")
@click.option("--grades", type=click.Choice(["auto", "as-is", "cranfield"]), default="auto", show_default=True,
              help="How qrels grades become gains; auto reads -1 grades as Cranfield's codes (1 best .. 4).")
@engine_options
def eval_command(docs: Path, queries: Path, qrels: Path, k: int, index_dir: Path | None, grades: str,
                 **options: Any) -> None:
    """Index DOCS (or reuse its index) and print nDCG@k, MAP@100, Recall@100 and MRR (trec_eval's
    definitions) of the default search path for the judged queries. With --engine typesense the
    articles go to a collection of their own (--collection, default eval-<folder>) in the cluster."""
    from . import evaluate

    gains = None if grades == "auto" else ("" if grades == "as-is" else grades)
    engine = None
    if (options.get("engine") or Config.load().engine) == "typesense":
        config = _config(**{**options, "collection": options.get("collection") or evaluate.default_collection(docs)})
        engine = open_engine(config)
    _setup_logging("WARNING")
    with _progress_bar() as progress:
        scores, summary = evaluate.run(docs, queries, qrels, index_dir, k, gains, progress, engine=engine)
    click.echo(f"index        {summary}", err=True)
    for line in scores.lines():
        click.echo(line)

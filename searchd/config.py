"""Settings: defaults, overridden by `SEARCHD_*` environment variables, overridden by CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    folder: Path = Path("seeds")
    index_dir: Path = Path("index")
    engine: str = "whoosh"
    host: str = "127.0.0.1"
    port: int = 8080
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    # Documents per commit during bulk work; a commit also happens when the queue runs dry.
    batch_size: int = 1000
    # Quiet time an event path must have before it is indexed (coalesces editor save bursts).
    debounce_seconds: float = 0.05
    rescan_seconds: float = 600.0
    polling: bool = False
    follow_symlinks: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    threads: int = 8
    # Web worker processes of `serve` and `web`; 0: one per core this process may run on.
    workers: int = 0
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    # /metrics without the token for a scraper on this machine (a loopback client).
    open_metrics: bool = False
    log_level: str = "INFO"
    # --engine typesense: every node of the cluster, its API key, the collection (an alias) and
    # this daemon's source (its article ids are then "<source>/<path>").
    typesense_urls: tuple[str, ...] = ()
    typesense_key: str | None = None
    collection: str = "articles"
    source: str | None = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Defaults < environment < explicit overrides (None means "not given")."""
        values = _from_environ(os.environ if environ is None else environ)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls()._with(values)

    def _with(self, values: Mapping[str, Any]) -> "Config":
        types = {f.name: f.type for f in fields(self)}
        coerced = {}
        for name, value in values.items():
            if name not in types:
                raise ValueError(f"unknown setting {name!r}")
            coerced[name] = _coerce(name, types[name], value)
        return replace(self, **coerced)


_ENV_NAMES = {
    "folder": "SEARCHD_FOLDER",
    "index_dir": "SEARCHD_INDEX",
    "engine": "SEARCHD_ENGINE",
    "host": "SEARCHD_HOST",
    "port": "SEARCHD_PORT",
    "max_file_bytes": "SEARCHD_MAX_FILE_BYTES",
    "batch_size": "SEARCHD_BATCH_SIZE",
    "debounce_seconds": "SEARCHD_DEBOUNCE",
    "rescan_seconds": "SEARCHD_RESCAN",
    "polling": "SEARCHD_POLLING",
    "follow_symlinks": "SEARCHD_FOLLOW_SYMLINKS",
    "include": "SEARCHD_INCLUDE",
    "exclude": "SEARCHD_EXCLUDE",
    "threads": "SEARCHD_THREADS",
    "workers": "SEARCHD_WORKERS",
    "token": "SEARCHD_TOKEN",
    "cors_origins": "SEARCHD_CORS_ORIGINS",
    "open_metrics": "SEARCHD_OPEN_METRICS",
    "log_level": "SEARCHD_LOG_LEVEL",
    "typesense_urls": "SEARCHD_TYPESENSE_URL",
    "typesense_key": "SEARCHD_TYPESENSE_KEY",
    "collection": "SEARCHD_COLLECTION",
    "source": "SEARCHD_SOURCE",
}


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    return {name: environ[var] for name, var in _ENV_NAMES.items() if environ.get(var)}


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    type_name = str(type_name)
    try:
        if type_name == "Path":
            return Path(value)
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
        if type_name == "bool":
            if isinstance(value, str):
                return value.strip().lower() in {"1", "true", "yes", "on"}
            return bool(value)
        if type_name.startswith("tuple"):
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            return tuple(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name}: cannot read {value!r} as {type_name}") from exc
    return value


__all__ = ["Config", "DEFAULT_MAX_FILE_BYTES"]

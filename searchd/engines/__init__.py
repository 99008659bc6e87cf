"""Search engines behind one interface (base.py). `open_engine` picks the one the settings name;
the engine packages are imported only when chosen (each has its own dependencies)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .base import EngineReader, EngineWriter

if TYPE_CHECKING:
    from ..config import Config

ENGINES = ("whoosh", "typesense")


class Engine(Protocol):
    name: str

    def describe(self) -> str: ...

    def open_writer(self) -> EngineWriter:
        """The one writer of this index or source; raises IndexBusy when another process has it."""

    def open_reader(self) -> EngineReader: ...

    def writer_running(self) -> bool: ...


def open_engine(config: "Config") -> Engine:
    if config.engine == "whoosh":
        from .whoosh import WhooshEngine

        if config.source:
            raise ValueError("--source needs --engine typesense (a Whoosh index has one daemon, which owns it all)")
        return WhooshEngine(Path(config.index_dir))
    if config.engine == "typesense":
        from .typesense import TypesenseEngine

        return TypesenseEngine(list(config.typesense_urls), config.typesense_key or "", config.collection,
                               config.source)
    raise ValueError(f"unknown engine {config.engine!r} (choose one of {', '.join(ENGINES)})")


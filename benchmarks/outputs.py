"""What a benchmark run leaves in its --out folder: results.json, rewritten as figures come in (a
run cut short keeps what it measured), then results.md; both say when the run was made and the
load average at its start and end (the machine may be shared)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable


def begin(script: str, argv: list[str], out: Path, **more: object) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return {"command": " ".join([script, *argv]), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_average_start": _load(), **more}


def save(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1))


def finish(results: dict, out: Path, markdown: Callable[[dict], str]) -> None:
    results["load_average_end"] = _load()
    save(results, out)
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))


def heading(results: dict, title: str) -> list[str]:
    """The first lines of results.md: what ran, when, where, under what load."""
    lines = [f"# {title} ({results['started']})", "", f"Command: `{results['command']}`  "]
    machine = results.get("machine")
    where = f"Machine: {machine['nproc']} cores, {machine['cpu']}; l" if machine else "L"
    return lines + [f"{where}oad average {results['load_average_start']} at start, {results['load_average_end']} at end.", ""]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]

"""`searchd` with its index writer held after its Nth commit, so that a test catches the daemon in
the middle of a bulk index by construction rather than by timing (an idle machine indexes 1,500
files in half a second; a busy one takes ten times as long).

    python tests/held_writer.py N MARKER watch --folder F --index I ...

runs the real command line. After the writer's Nth commit it writes MARKER (the number of
documents then committed) and waits until the daemon is asked to stop: SIGTERM then carries on
exactly as it would have, and `kill -9` finds a daemon that has committed part of the work and
has more to do. The production code path pays nothing for this: only this wrapper patches it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from searchd.cli import main
from searchd.engines.whoosh.writer import WhooshWriter


def hold_after(commits: int, marker: Path) -> None:
    apply = WhooshWriter.apply

    def held_apply(self: WhooshWriter, batch: Any) -> None:
        apply(self, batch)
        if self.commits == commits and self.stop_requested is not None:
            marker.write_text(str(self.stats().documents), encoding="utf-8")
            self.stop_requested.wait()

    WhooshWriter.apply = held_apply  # type: ignore[method-assign]


if __name__ == "__main__":
    hold_after(int(sys.argv[1]), Path(sys.argv[2]))
    main(sys.argv[3:], prog_name="searchd")

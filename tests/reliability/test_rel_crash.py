"""kill -9 of the `searchd watch` daemon at 20 random moments, half during a bulk index and half
during live updates: after every kill the index opens, after every restart it converges to the
folder (same ids, same content), and nothing is lost or left behind at the end.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relkit import article_text, cli, converged, folder_truth, index_opens, index_view, marker, wait_until
from searchd.engines.whoosh import WhooshEngine
from searchd.engines.whoosh.store import read_status
from searchd.search import SearchRequest, Searcher

KILLS = 20
INITIAL_FILES = 2000


@dataclass
class Folder:
    """The article folder and the random changes made to it. Every write carries a new version
    marker, so that the index holding an old version is caught, not only a missing file."""

    root: Path
    rng: random.Random
    next_id: int = 0
    version: int = 0
    paths: list[Path] = field(default_factory=list)  # what is on disk, without walking it each time

    def add(self, count: int) -> None:
        for _ in range(count):
            token = f"crash{self.next_id:06d}"
            self.next_id += 1
            path = self.root / f"c{self.next_id % 7}" / f"{token}.txt"
            self.write(path, token)
            self.paths.append(path)

    def write(self, path: Path, token: str) -> None:
        self.version += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")  # editors' atomic save: ignored temp, then rename
        tmp.write_text(article_text(token, self.version), encoding="utf-8")
        tmp.replace(path)

    def files(self) -> list[Path]:
        return self.paths

    def churn(self, operations: int) -> None:
        for _ in range(operations):
            self.one_change()

    def one_change(self) -> None:
        files = self.files()
        roll = self.rng.random()
        if roll < 0.4 or not files:
            self.add(1)
        elif roll < 0.7:
            path = self.rng.choice(files)
            self.write(path, path.stem)
        elif roll < 0.9:
            path = files.pop(self.rng.randrange(len(files)))
            path.unlink()
        else:
            index = self.rng.randrange(len(files))
            path, target = files[index], self.root / f"c{self.rng.randrange(7)}" / files[index].name
            if target != path:
                path.replace(target)
                files[index] = target


def _searchable(index_dir: Path, folder: Folder, sample: int = 40) -> None:
    """What a reader sees: a sample of files found by their current version's marker."""
    searcher = Searcher(WhooshEngine(index_dir).open_reader())
    for path in folder.rng.sample(folder.files(), min(sample, len(folder.files()))):
        text = path.read_text(encoding="utf-8")
        version = int(text.split("marker v")[1].split("x")[0])
        result = searcher.search(SearchRequest(q=marker(path.stem, version)))
        assert [hit.id for hit in result.hits] == [path.relative_to(folder.root).as_posix()], path


@pytest.mark.slow
@pytest.mark.timeout(600)  # a busy shared machine can double the usual time
def test_kill9_during_bulk_index_and_live_updates(tmp_path: Path, spawn) -> None:
    root, index_dir = tmp_path / "articles", tmp_path / "index"
    folder = Folder(root, random.Random(20261125))
    folder.add(INITIAL_FILES)
    killed_while = []
    for round_number in range(KILLS):
        bulk = round_number % 2 == 0
        if bulk:  # changes made while no daemon runs: the restart's reconcile is a bulk index
            folder.add(150)
            folder.churn(60)
        if bulk:
            # Killed after its 1st to 3rd commit of the reconcile (small batches make several):
            # mid-bulk by construction, on a fast idle machine as on a busy one.
            hold = (folder.rng.randint(1, 3), tmp_path / f"held-{round_number}")
            daemon = spawn("watch", root, index_dir, "--log-level", "INFO", env={"SEARCHD_BATCH_SIZE": "50"}, hold=hold)
            daemon.wait_held()
        else:
            daemon = spawn("watch", root, index_dir, "--log-level", "INFO")
            daemon.wait_caught_up(timeout=120)
            assert converged(index_dir, root), f"round {round_number}: restart did not converge"
            stop_churn = threading.Event()

            def churn() -> None:
                while not stop_churn.is_set():
                    folder.one_change()
                    time.sleep(0.01)

            writer = threading.Thread(target=churn)
            writer.start()
            time.sleep(folder.rng.uniform(0.2, 2.0))
        status = read_status(index_dir)
        mine = status.get("pid") == daemon.proc.pid
        killed_while.append("starting" if not mine else f"{status.get('status')}:{status.get('pending')}")
        orphans = daemon.kill9()
        assert not orphans, f"round {round_number}: processes outlived the killed daemon: {orphans}"
        if not bulk:
            stop_churn.set()
            writer.join()
        assert index_opens(index_dir) > 0  # opens, with what was committed, after every kill
    daemon = spawn("watch", root, index_dir)
    daemon.wait_caught_up(timeout=180)
    wait_until(lambda: converged(index_dir, root), 30, what="final convergence")
    truth = folder_truth(root)
    assert index_view(index_dir) == truth and len(truth) > INITIAL_FILES
    _searchable(index_dir, folder)
    assert daemon.stop() == 0
    # The operator's view agrees: `searchd search --json` finds a file by its current version.
    path = folder.files()[-1]
    version = int(path.read_text(encoding="utf-8").split("marker v")[1].split("x")[0])
    found = cli("search", marker(path.stem, version), "--index", str(index_dir), "--json")
    assert found.returncode == 0, found.stderr
    assert [hit["id"] for hit in json.loads(found.stdout)["hits"]] == [path.relative_to(root).as_posix()]
    broken = sorted(p.name for p in index_dir.glob("broken-*"))
    busy = sum(1 for k in killed_while if not k.startswith(("starting", "ok:0")))
    print(f"\n{KILLS} kills: {killed_while}; {busy} while work was pending; broken indexes kept aside: {broken}; "
          f"final {len(truth)} files converged")
    assert busy >= KILLS // 3, f"too few kills landed during work: {killed_while}"

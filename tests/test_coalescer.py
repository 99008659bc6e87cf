"""Events settling into commits, on a fake clock and a fake file system: the timing rules of the
daemon (watcher/coalescer.py) without sleeping."""

from __future__ import annotations

from searchd.articles import FileStamp
from searchd.watcher.coalescer import AFTER_CLOSE, MAX_BATCH_DELAY, OPEN_WAIT, SETTLE_MAX, Coalescer
from searchd.watcher.events import Event


class World:
    """A clock that moves only when told, and files whose size the test sets."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sizes: dict[str, int] = {}

    def clock(self) -> float:
        return self.now

    def stat(self, path: str) -> FileStamp | None:
        size = self.sizes.get(path)
        return None if size is None else FileStamp(size, int(size * 1000))

    def coalescer(self, debounce: float = 0.05, batch_size: int = 1000) -> Coalescer:
        return Coalescer(debounce, batch_size, clock=self.clock, stat=self.stat)

    def event(self, path: str, kind: str = "") -> Event:
        return Event(path, False, self.now, kind)


def test_a_path_settles_after_its_quiet_window_and_not_before() -> None:
    world = World()
    changes = world.coalescer(debounce=0.05)
    world.sizes["a"] = 10
    changes.note(world.event("a"), sees_opens=False)
    world.now += 0.04
    assert changes.settled() == ([], 1)
    world.now += 0.02
    assert changes.settled() == (["a"], 0)
    assert changes.commit_now(["a"], 0)
    changes.done(["a"])
    assert len(changes) == 0


def test_a_file_that_keeps_growing_waits_longer_each_time() -> None:
    world = World()
    changes = world.coalescer(debounce=0.05)
    world.sizes["slow"] = 1
    changes.note(world.event("slow"), sees_opens=False)
    for step in range(2, 8):  # the file grows between looks, with no event (polling, NFS)
        world.now += changes.quiet(changes.pending["slow"]) + 0.001
        world.sizes["slow"] = step
        assert changes.settled() == ([], 1)
    assert changes.quiet(changes.pending["slow"]) == SETTLE_MAX  # doubled up to the cap
    world.now += SETTLE_MAX + 0.001
    assert changes.settled() == (["slow"], 0)


def test_a_created_file_waits_for_its_close_then_settles_at_once() -> None:
    world = World()
    changes = world.coalescer(debounce=0.05)
    world.sizes["new"] = 5
    changes.note(world.event("new", "created"), sees_opens=True)
    world.now += 0.02
    assert changes.settled() == ([], 1)  # quiet for longer than the debounce, but still open
    changes.note(world.event("new", "closed"), sees_opens=True)
    world.now += AFTER_CLOSE + 0.001
    assert changes.settled() == (["new"], 0)  # closed: no need to wait out the debounce


def test_a_slow_writer_is_not_trusted_to_be_done_at_its_close() -> None:
    world = World()
    changes = world.coalescer(debounce=0.05)
    world.sizes["upload"] = 5
    changes.note(world.event("upload", "created"), sees_opens=True)
    world.now += 0.5  # writes spaced out: a slow upload
    changes.note(world.event("upload", "closed"), sees_opens=True)
    world.now += 0.5
    assert changes.settled() == ([], 1)
    world.now += 0.3
    assert changes.settled() == (["upload"], 0)


def test_an_open_file_that_never_closes_is_indexed_after_the_open_wait() -> None:
    world = World()
    changes = world.coalescer()
    world.sizes["moved-in"] = 5
    changes.note(world.event("moved-in", "created"), sees_opens=True)
    world.now += OPEN_WAIT + 0.001
    assert changes.settled() == (["moved-in"], 0)


def test_settled_paths_wait_for_others_settling_but_not_past_the_batch_delay() -> None:
    world = World()
    changes = world.coalescer(debounce=0.05)
    world.sizes.update(a=1, b=1)
    changes.note(world.event("a"), sees_opens=False)
    world.now += 0.06
    changes.note(world.event("b"), sees_opens=False)  # b just arrived: a waits for it
    ready, settling = changes.settled()
    assert (ready, settling) == (["a"], 1) and not changes.commit_now(ready, settling)
    world.now = 100.0 + MAX_BATCH_DELAY
    for _ in range(3):  # b keeps changing: a goes alone once it waited long enough
        changes.note(world.event("b"), sees_opens=False)
    ready, settling = changes.settled()
    assert ready == ["a"] and changes.commit_now(ready, settling)


def test_a_full_batch_is_committed_without_waiting() -> None:
    world = World()
    changes = world.coalescer(debounce=0.05, batch_size=2)
    for name in "abc":
        world.sizes[name] = 1
        changes.note(world.event(name), sees_opens=False)
    world.now += 0.06
    changes.note(world.event("c"), sees_opens=False)
    ready, settling = changes.settled()
    assert ready == ["a", "b"] and settling == 1 and changes.commit_now(ready, settling)


def test_next_look_is_when_the_earliest_window_ends() -> None:
    world = World()
    changes = world.coalescer(debounce=0.05)
    assert changes.next_look() is None
    world.sizes["a"] = 1
    changes.note(world.event("a"), sees_opens=False)
    assert changes.next_look() == world.now + 0.05

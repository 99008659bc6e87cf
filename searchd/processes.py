"""Worker processes that never outlive the process that started them, and SIGTERM as Ctrl-C."""

from __future__ import annotations

import os
import signal


def die_with_parent(parent: int | None = None) -> None:
    """Ask the kernel to end this process when its parent dies (Linux; elsewhere a no-op): a
    worker of a daemon killed -9 would otherwise wait forever for work on its pipe (it holds the
    pipe's other end itself). A worker still starting up when its parent was killed is too late
    for that: given the parent's pid, it notices that it was orphaned already and exits."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def process_gone(pid: int) -> bool:
    """Whether no process of this number exists on this machine (another user's live process
    counts as existing: it is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def interrupt_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does: a stop then unwinds through the same
    cleanup instead of ending the process where it stands."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

"""Worker processes that never outlive the process that started them."""

from __future__ import annotations

import signal


def die_with_parent() -> None:
    """Ask the kernel to end this process when its parent dies (Linux; elsewhere a no-op): a
    worker of a daemon killed -9 would otherwise wait forever for work on its pipe."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

"""This process's resident memory from /proc (stdlib only: the g4f venv imports it too).

``ru_maxrss`` is no use here: Linux carries it over ``fork`` + ``exec``, so a client started
by a big parent reports the parent's size. ``VmHWM`` belongs to the process's own memory
map, and writing ``5`` to ``/proc/self/clear_refs`` resets it to the current size.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _field_kib(name: str) -> int:
    """A ``kB`` field of /proc/self/status (0 when unavailable)."""
    with contextlib.suppress(OSError):
        for line in _STATUS.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def rss_kib() -> int:
    """Resident memory now, in KiB."""
    return _field_kib("VmRSS")


def peak_rss_kib() -> int:
    """Peak resident memory since the start or the last :func:`reset_peak`, in KiB."""
    return _field_kib("VmHWM")


def reset_peak() -> None:
    """Reset the peak to the current resident size (Linux 4.0+; ignored elsewhere)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")

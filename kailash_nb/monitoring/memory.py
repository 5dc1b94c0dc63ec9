"""Memory use of this process: resident set size over the memory it may use.

The limit is the cgroup memory limit of the process's container when one is set
(cgroup v2 ``memory.max`` or v1 ``memory.limit_in_bytes``), else the machine's total
memory, whichever is smaller. Everything is read from ``/proc`` and ``/sys`` (Linux);
elsewhere the peak RSS from ``resource`` and the physical memory from ``sysconf``
stand in::

    memory_usage()  # 0.12: this process holds 12 % of what it may use
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "memory_limit_bytes",
    "memory_usage",
    "process_rss_bytes",
    "rss_method",
]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"
_STATM_METHOD = "resident set size from /proc/self/statm"
_PEAK_METHOD = "peak resident set size from resource.getrusage (no /proc/self/statm)"

# /proc/self/statm opened once per process and re-read with pread (about 1 us against
# 9 us for open/read/close): the runtime's memory limit reads it before and after every
# node. Keyed by pid, since after a fork the inherited descriptor shows the parent.
_statm: tuple[int, int] | None = None


def process_rss_bytes() -> int:
    """Resident set size of this process, in bytes (:func:`rss_method` says how it is
    measured here)."""
    global _statm
    try:
        pid = os.getpid()
        if _statm is None or _statm[0] != pid:
            _statm = (pid, os.open(_STATM, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE_SIZE
    except (OSError, AttributeError, IndexError, ValueError):
        _statm = None
        return _peak_rss_bytes()


def rss_method() -> str:
    """How :func:`process_rss_bytes` measures on this system: the current resident set
    size from ``/proc/self/statm`` (Linux), else the process's peak resident set size
    from ``resource.getrusage``, which never goes down."""
    try:
        with open(_STATM, encoding="ascii") as handle:
            handle.read()
    except OSError:
        return _PEAK_METHOD
    return _STATM_METHOD


def _peak_rss_bytes() -> int:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def memory_limit_bytes() -> int | None:
    """Bytes this process may use: the cgroup limit if set, capped by total memory;
    ``None`` when neither can be read."""
    total = _total_memory()
    limit = _cgroup_limit()
    if limit is None or (total is not None and limit >= total):
        return total
    return limit


def memory_usage(limit_bytes: int | None = None) -> float | None:
    """RSS divided by ``limit_bytes`` (default :func:`memory_limit_bytes`); ``None``
    when no limit is known."""
    limit = limit_bytes if limit_bytes is not None else memory_limit_bytes()
    if not limit:
        return None
    return process_rss_bytes() / limit


def _total_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def _cgroup_limit() -> int | None:
    for path in _cgroup_limit_files():
        try:
            text = path.read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text == "max":
            return None
        if text.isdigit():
            return int(text)
    return None


def _cgroup_limit_files() -> list[Path]:
    root = Path("/sys/fs/cgroup")
    files = []
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.lstrip("/")
        if hierarchy == "0" and not controllers:
            files.append(root / relative / "memory.max")
        elif "memory" in controllers.split(","):
            files.append(root / "memory" / relative / "memory.limit_in_bytes")
    files += [root / "memory.max", root / "memory" / "memory.limit_in_bytes"]
    return files

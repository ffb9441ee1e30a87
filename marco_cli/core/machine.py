"""Facts about the CPUs marco may run on (for the thread setup).

Only what the operating system says at the moment of asking; nothing here
measures speed (that is ``backends/threads.py``'s job).
"""

from __future__ import annotations

import os
from pathlib import Path

_SYS_CPU = Path("/sys/devices/system/cpu")


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask, where the
    system has one: a container or ``taskset`` can allow fewer than exist)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical cores among the usable CPUs. Two hyper-threads of one core
    share its vector units, so llama.cpp gains little from the second and
    loses when it stalls the first; Linux tells which CPUs are siblings.
    Elsewhere (or when /sys is unreadable) every logical CPU counts."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return usable_cpus()
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = _SYS_CPU / f"cpu{cpu}" / "topology"
        try:
            package = (topo / "physical_package_id").read_text().strip()
            core = (topo / "core_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return max(1, len(cores))

"""What every benchmark records about the machine it ran on: cores, the CPU's vector extensions, the load.

Machines differ (AVX2 here, AVX-512 VNNI or AMX elsewhere), so a benchmark's numbers say where they came from.
"""

from __future__ import annotations

import os
import platform
from contextlib import suppress
from pathlib import Path
from typing import Any


def cpu_facts() -> dict[str, Any]:
    flags = ""
    with suppress(OSError, StopIteration):
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "avx2": " avx2" in flags, "avx512": " avx512f" in flags, "vnni": "vnni" in flags,
        "amx": "amx_tile" in flags, "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }

"""What every evaluation and benchmark records about the machine it ran on: cores, the CPU's vector
extensions, the load, Python and the versions of the packages that shape the numbers.

Machines differ (AVX2 here, AVX-512 VNNI or AMX elsewhere), and so do library versions (an onnxruntime or torch
upgrade moves vectors, a pypdf upgrade moves page text), so a number says where it came from.
"""

from __future__ import annotations

import os
import platform
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

# The distributions whose version can change an evaluation's figures: the embedding runtimes, the vector store,
# the parsers, the numerics.
PACKAGES = ("numpy", "torch", "onnxruntime", "onnx", "sentence-transformers", "transformers", "tokenizers",
            "chromadb", "pypdf", "pypdfium2", "python-docx", "beautifulsoup4", "markdown-it-py",
            "charset-normalizer", "scikit-learn")


def cpu_flags(cpuinfo: str) -> list[str]:
    """The `flags` line of /proc/cpuinfo's text, as a sorted list (empty when there is none)."""
    line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    return sorted(set(line.partition(":")[2].split()))


def _read_cpuinfo() -> str:
    with suppress(OSError):
        return Path("/proc/cpuinfo").read_text()
    return ""


def cpu_facts() -> dict[str, Any]:
    """Cores, the vector extensions that decide which kernels run, the load average at the start, Python."""
    flags = set(cpu_flags(_read_cpuinfo()))
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "avx2": "avx2" in flags, "avx512": "avx512f" in flags, "vnni": any("vnni" in flag for flag in flags),
        "amx": "amx_tile" in flags, "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Each distribution's installed version; None when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_facts() -> dict[str, Any]:
    """`cpu_facts` plus the system, every CPU flag and the package versions: what an evaluation records."""
    return {**cpu_facts(), "system": platform.platform(), "cpu_flags": cpu_flags(_read_cpuinfo()),
            "packages": package_versions()}

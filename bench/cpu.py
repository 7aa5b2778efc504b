"""The benchmarks' record of the machine they ran on: `evaluation.machine.cpu_facts`, shared with the
evaluations (bench/ingest.py and bench/load.py import it from here, after putting the checkout on the path)."""

from __future__ import annotations

from evaluation.machine import cpu_facts

__all__ = ["cpu_facts"]

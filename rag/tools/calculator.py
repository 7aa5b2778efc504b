"""The calculation tool's interface: run model-written Python, get back what it printed.

The real implementation (rag/tools/sandbox.py) runs the code in CPython compiled to WebAssembly, with no
network, no files of the host and limits on CPU time, memory and output; tests use tests/fakes.py's
ScriptedCalculator where the sandbox itself is not what they test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Calculation:
    """What one run gave: the printed output (cut to the output limit) or why it failed."""

    output: str
    error: str = ""  # for the model and the person: "CPU time limit (5 s) reached", a traceback's last line
    truncated: bool = False  # the output was longer than the limit and was cut
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


class Calculator(ABC):
    """Runs Python statements statelessly: each run starts from nothing and leaves nothing behind."""

    @abstractmethod
    def run(self, code: str) -> Calculation:
        """Run `code`; never raises for anything the code does (errors and limits come back in the result).

        A calculator that cannot run at all (its runtime's package is missing, its worker cannot start) raises
        ConfigError, whose message names what is missing."""

    def close(self) -> None:  # noqa: B027 (optional: a fake holds nothing)
        """Release what the calculator holds (a compiled module, a worker process)."""

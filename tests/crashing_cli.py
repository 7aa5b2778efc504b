"""`python -m tests.crashing_cli STEP[:N] COMMAND...`: the `archivist` command line, killed (SIGKILL) the N-th
time (default the first) an index it opens reaches the named write step (`Index._step`: before-vectors,
before-catalog, after-catalog, before-part, after-part).

The crash tests run this instead of `python -m ui.cli`, so the product itself carries no crash hook: this
wrapper sets the index's `step_hook` on every index the factory opens, then hands over to the command line.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence

from rag import factory
from rag.index.index import Index
from rag.settings import Settings


def kill_at(step: str, nth: int = 1) -> Callable[[str], None]:
    """A step hook that SIGKILLs this process the `nth` time the index reaches `step`."""
    remaining = [nth]

    def hook(name: str) -> None:
        if name == step:
            remaining[0] -= 1
            if remaining[0] == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def install(spec: str) -> None:
    """Make every index the factory opens from now on stop at `spec` ("step" or "step:n")."""
    step, _, count = spec.partition(":")
    hook = kill_at(step, int(count or 1))
    opening = factory.open_default_index

    def open_default_index(settings: Settings) -> Index:
        index = opening(settings)
        index.step_hook = hook
        return index

    factory.open_default_index = open_default_index


def main(argv: Sequence[str]) -> int:
    spec, *command = argv
    install(spec)
    from ui import cli

    return cli.main(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

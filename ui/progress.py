"""Progress bars for long work, drawn on standard error so `--json` output stays clean."""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm

from ingest.pipeline import FileResult, Outcome


class FileProgress:
    """A bar that advances per file and shows what has failed so far."""

    def __init__(self, total: int, description: str, unit: str = "file") -> None:
        self._bar = tqdm(
            total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True,
            disable=None,  # no bar when standard error is not a terminal (logs, CI)
        )
        self.failed = 0
        self._passages = ""

    def advance(self, result: FileResult | None = None) -> None:
        if result is not None and result.outcome in (Outcome.FAILED, Outcome.SKIPPED):
            self.failed += 1
        self._passages = ""
        self._show()
        self._bar.update(1)

    def passages(self, done: int, total: int) -> None:
        """Progress within a large file, written in parts (`Ingester.on_passages`): "passages 1,500/90,322"."""
        self._passages = f"passages {done:,}/{total:,}" if total and done < total else ""
        self._show()
        self._bar.refresh()

    def _show(self) -> None:
        parts = [f"{self.failed} not indexed"] if self.failed else []
        if self._passages:
            parts.append(self._passages)
        self._bar.set_postfix_str(", ".join(parts), refresh=False)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> FileProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._bar.close()

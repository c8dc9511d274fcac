"""The importers' dataset writer: :class:`datagen.dataset.DatasetWriter` plus progress.

Imports of large foreign files (thousands of trajectories) take minutes; like every long command of
the toolkit they show a progress bar with rate and ETA on stderr (one line redrawn on a terminal,
periodic lines in a log: :mod:`datagen.progress`) and end with one summary line. The writing itself,
and its crash safety, are the contract writer's.
"""

from __future__ import annotations

import os
import sys
import time

from datagen.dataset import DatasetWriter
from datagen.progress import progress_bar

__all__ = ["ImportWriter", "last_import", "summary_line"]

_LAST: dict = {}


def last_import() -> dict:
    """``{"path", "samples", "seconds"}`` of the last import finished in this process (for summaries)."""
    return dict(_LAST)


class ImportWriter(DatasetWriter):
    """A :class:`DatasetWriter` that counts its samples on a progress bar (``desc``: its label, default
    ``import <file name>``)."""

    def __init__(self, path, *, desc: str = None, **kwargs):
        super().__init__(path, **kwargs)
        self._t0 = time.perf_counter()
        self._count = 0
        desc = desc or f"import {os.path.basename(os.fspath(path))}"
        self._bar = progress_bar(
            total=int(kwargs["n_samples"]), desc=desc, unit="sample", file=sys.stderr, dynamic_ncols=True, smoothing=0.1
        )

    def write(self, index, fields, *args, **kwargs):
        super().write(index, fields, *args, **kwargs)
        self._count += 1
        self._bar.update(1)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._bar.close()
        super().__exit__(exc_type, exc, tb)
        if exc_type is None:
            _LAST.clear()
            _LAST.update(path=self.path, samples=self._count, seconds=time.perf_counter() - self._t0)


def summary_line(out: str) -> str:
    """The import's closing line: ``wrote OUT: N samples in S s``."""
    info = last_import()
    if info and os.path.abspath(os.fspath(out)) == info["path"]:
        return f"wrote {out}: {info['samples']} samples in {info['seconds']:.1f} s"
    return f"wrote {out}"

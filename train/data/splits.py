"""Train/val/test splits of data-contract files, stated in the config.

A split is one string:

* ``"START:STOP"`` -- the samples ``START <= i < STOP`` of the data module's main file (Python
  slice rules: negative numbers count from the end, either bound may be empty; ``"-200:"`` is the
  last 200 samples), e.g. the FNO Navier-Stokes protocol ``train="0:1000"``, ``test="-200:"``;
* ``"PATH"`` -- every sample of another data-contract file;
* ``"PATH[START:STOP]"`` -- a range of another file.

Samples written as invalid (``Dataset.valid`` false, e.g. a diverged trajectory) are left out of
every split; the number left out is reported by :meth:`Split.describe`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

__all__ = ["Split", "parse_split", "check_disjoint"]

_RANGE = re.compile(r"^\s*(-?\d*)\s*:\s*(-?\d*)\s*$")
_FILE_RANGE = re.compile(r"^(?P<path>.+)\[(?P<range>[^\]]*)\]\s*$")


@dataclass(frozen=True)
class Split:
    """Which samples of which file a split holds; ``indices`` are sorted sample indices."""

    name: str
    path: str
    indices: np.ndarray
    dropped_invalid: int = 0

    def __len__(self) -> int:
        return int(self.indices.size)

    def describe(self) -> str:
        lo, hi = (int(self.indices.min()), int(self.indices.max())) if len(self) else (0, -1)
        extra = f", {self.dropped_invalid} invalid sample(s) left out" if self.dropped_invalid else ""
        return f"{self.name}: {len(self)} samples of {os.path.basename(self.path)} (indices {lo}..{hi}){extra}"


def _parse_range(text: str, n: int, name: str, spec: str) -> Tuple[int, int]:
    m = _RANGE.match(text)
    if not m:
        raise ValueError(f"split {name}={spec!r}: {text!r} is not a range 'START:STOP' "
                         "(e.g. '0:1000', '-200:'); allowed forms: 'START:STOP', 'PATH', 'PATH[START:STOP]'")
    start = int(m.group(1)) if m.group(1) else None
    stop = int(m.group(2)) if m.group(2) else None
    a, b, _ = slice(start, stop).indices(n)
    return a, b


def parse_split(name: str, spec: Optional[str], main_path: Optional[str], open_fn) -> Optional[Split]:
    """Resolve one split string against ``main_path`` (``None`` spec -> no such split).

    ``open_fn(path)`` opens a data-contract file (``datagen.dataset.open_dataset``); only its header
    is read here.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none", "null")):
        return None
    spec = str(spec)
    m = _FILE_RANGE.match(spec)
    if _RANGE.match(spec):
        if main_path is None:
            raise ValueError(f"split {name}={spec!r} is an index range but the data module has no `path`; "
                             "give `path` or name a file in the split")
        path, rng = main_path, spec
    elif m:
        path, rng = m.group("path").strip(), m.group("range")
    else:
        path, rng = spec.strip(), ":"
    path = os.path.abspath(os.path.expanduser(path))
    if path != os.path.abspath(os.path.expanduser(main_path or "")) and not os.path.exists(path):
        raise ValueError(f"split {name}={spec!r} is neither an index range nor an existing file ({path}); "
                         "allowed forms: 'START:STOP' (e.g. '0:1000', '-200:'), 'PATH', 'PATH[START:STOP]'")
    ds = open_fn(path)
    try:
        n = len(ds)
        a, b = _parse_range(rng, n, name, spec)
        if b <= a:
            raise ValueError(f"split {name}={spec!r} selects no samples of {path} ({n} samples)")
        idx = np.arange(a, b)
        valid = np.asarray(ds.valid, dtype=bool)[idx]
    finally:
        ds.close()
    return Split(name, path, idx[valid], int((~valid).sum()))


def check_disjoint(train: Split, other: Optional[Split]) -> None:
    """Raise if ``other`` (val or test) shares samples with the training split."""
    if other is None or other.path != train.path:
        return
    common = np.intersect1d(train.indices, other.indices)
    if common.size:
        raise ValueError(f"the {other.name} split shares {common.size} samples with the train split "
                         f"(e.g. index {int(common[0])} of {train.path}); statistics and metrics would leak")

"""Train/val/test splits of data-contract files, stated in the config.

A split is one string:

* ``"START:STOP"`` -- the samples ``START <= i < STOP`` of the data module's main file (Python
  slice rules: negative numbers count from the end, either bound may be empty; ``"-200:"`` is the
  last 200 samples), e.g. the FNO Navier-Stokes protocol ``train="0:1000"``, ``test="-200:"``;
  a bound with a decimal point is a fraction of the file (``"0:0.9"`` the first 90 %, ``"0.9:"``
  the last 10 %; bound ``f`` is sample ``floor(f N)``, so ``"0:0.9"`` and ``"0.9:"`` are
  complementary);
* ``"PATH"`` -- every sample of another data-contract file;
* ``"PATH[START:STOP]"`` -- a range of another file.

Splits are always strings: a number (e.g. YAML 1.1 reads an unquoted ``10:20`` as the base-60
integer 620) is refused. :func:`fit_index_splits` adapts index-range splits that do not fit a
file (a config written for 1000 samples used on 50) to the same proportions of the file.

Samples written as invalid (``Dataset.valid`` false, e.g. a diverged trajectory) are left out of
every split; the number left out is reported by :meth:`Split.describe`, and a split left with no
valid sample is an error.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = [
    "Split",
    "parse_split",
    "check_disjoint",
    "fit_index_splits",
    "check_split_type",
    "is_index_range",
    "SPLIT_VALUE",
]

_BOUND = r"-?(?:\d+|\d*\.\d+|\d+\.)?"
_RANGE = re.compile(rf"^\s*({_BOUND})\s*:\s*({_BOUND})\s*$")
_FILE_RANGE = re.compile(r"^(?P<path>.+)\[(?P<range>[^\]]*)\]\s*$")
#: a value that looks like an index range (used by the CLI to keep such values strings)
SPLIT_VALUE = _RANGE


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


def is_index_range(spec) -> bool:
    """Whether a split string is an index range of the main file (``"0:1000"``, ``"-200:"``, ``"0.9:"``)."""
    return isinstance(spec, str) and bool(_RANGE.match(spec))


def _bound(text: str, n: int, name: str, spec: str) -> Optional[int]:
    if text == "":
        return None
    if "." in text:
        f = float(text)
        if not -1.0 <= f <= 1.0:
            raise ValueError(
                f"split {name}={spec!r}: the fraction {text} is outside [-1, 1]; a bound with a "
                "decimal point is a fraction of the file (e.g. '0:0.9', '0.9:')"
            )
        k = int(math.floor(abs(f) * n + 1e-9))
        return -k if f < 0 else k
    return int(text)


def _parse_range(text: str, n: int, name: str, spec: str) -> Tuple[int, int]:
    m = _RANGE.match(text)
    if not m:
        raise ValueError(
            f"split {name}={spec!r}: {text!r} is not a range 'START:STOP' "
            "(e.g. '0:1000', '-200:', '0.9:'); allowed forms: 'START:STOP', 'PATH', 'PATH[START:STOP]'"
        )
    a, b, _ = slice(_bound(m.group(1), n, name, spec), _bound(m.group(2), n, name, spec)).indices(n)
    return a, b


def check_split_type(name: str, spec) -> None:
    if isinstance(spec, bool) or isinstance(spec, (int, float)):
        raise ValueError(
            f"split {name}={spec!r} is a number, not a split string: write it quoted, e.g. "
            f'{name}: "0:1000" (YAML 1.1 reads an unquoted 10:20 as the base-60 number 620); '
            "allowed forms: 'START:STOP', 'PATH', 'PATH[START:STOP]'"
        )
    if spec is not None and not isinstance(spec, str):
        raise ValueError(
            f"split {name}={spec!r} must be a string: 'START:STOP' (e.g. '0:1000', '-200:', "
            "'0.9:'), 'PATH' or 'PATH[START:STOP]'"
        )


def _is_none(spec) -> bool:
    return spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none", "null"))


def parse_split(name: str, spec: Optional[str], main_path: Optional[str], open_fn) -> Optional[Split]:
    """Resolve one split string against ``main_path`` (``None`` spec -> no such split).

    ``open_fn(path)`` opens a data-contract file (``datagen.dataset.open_dataset``); only its header
    is read here.
    """
    check_split_type(name, spec)
    if _is_none(spec):
        return None
    m = _FILE_RANGE.match(spec)
    if _RANGE.match(spec):
        if main_path is None:
            raise ValueError(
                f"split {name}={spec!r} is an index range but the data module has no `path`; "
                "give `path` or name a file in the split"
            )
        path, rng = main_path, spec
    elif m:
        path, rng = m.group("path").strip(), m.group("range")
    else:
        path, rng = spec.strip(), ":"
    path = os.path.abspath(os.path.expanduser(path))
    if path != os.path.abspath(os.path.expanduser(main_path or "")) and not os.path.exists(path):
        raise ValueError(
            f"split {name}={spec!r} is neither an index range nor an existing file ({path}); "
            "allowed forms: 'START:STOP' (e.g. '0:1000', '-200:', '0.9:'), 'PATH', 'PATH[START:STOP]'"
        )
    ds = open_fn(path)
    try:
        n = len(ds)
        a, b = _parse_range(rng, n, name, spec)
        if b <= a:
            raise ValueError(f"split {name}={spec!r} selects no samples of {path} ({n} samples)")
        idx = np.arange(a, b)
        valid = np.asarray(ds.valid, dtype=bool)[idx]
        reasons = dict(getattr(ds, "invalid_reasons", {}) or {})
    finally:
        ds.close()
    if not valid.any():
        why = sorted({reasons.get(int(i), "") for i in idx if int(i) in reasons} - {""})
        raise ValueError(
            f"split {name}={spec!r} of {path} holds no valid sample: all {idx.size} selected samples "
            f"are marked invalid"
            + (f" ({'; '.join(why[:3])})" if why else "")
            + "; choose other samples or regenerate the data"
        )
    return Split(name, path, idx[valid], int((~valid).sum()))


def check_disjoint(train: Split, other: Optional[Split]) -> None:
    """Raise if ``other`` (val or test) shares samples with the training split."""
    if other is None or other.path != train.path:
        return
    common = np.intersect1d(train.indices, other.indices)
    if common.size:
        raise ValueError(
            f"the {other.name} split shares {common.size} samples with the train split "
            f"(e.g. index {int(common[0])} of {train.path}); statistics and metrics would leak: make "
            f"the ranges disjoint (e.g. train '0:0.9', {other.name} '0.9:')"
        )


# ------------------------------------------------------------------------------------------------
# index splits that do not fit the file
# ------------------------------------------------------------------------------------------------
def _requested(spec: str) -> Tuple[Optional[int], Optional[int], bool]:
    """``(start, stop, fits_any)`` of an integer index range read without a file size; fractions
    always fit (``fits_any``)."""
    m = _RANGE.match(spec)
    lo, hi = m.group(1), m.group(2)
    if "." in lo or "." in hi:
        return None, None, True
    return (int(lo) if lo else None), (int(hi) if hi else None), False


def _size(spec: str) -> Optional[int]:
    """Number of samples an integer range asks for, when it says (``"0:1000"`` 1000, ``"-200:"`` 200)."""
    a, b, frac = _requested(spec)
    if frac:
        return None
    if a is not None and b is not None and (a >= 0) == (b >= 0):
        return max(0, b - a)
    if a is not None and a < 0 and b is None:
        return -a
    if a in (None, 0) and b is not None and b > 0:
        return b
    return None


def _fits(spec: str, n: int) -> bool:
    a, b, frac = _requested(spec)
    if frac:
        return True

    def empty(size):
        lo, hi, _ = slice(a, b).indices(size)
        return hi <= lo

    # empty whatever the size (e.g. "5:5") is a mistake reported later, not a size problem
    return all(v is None or -n <= v <= n for v in (a, b)) and (not empty(n) or empty(10**12))


def fit_index_splits(specs: Dict[str, Optional[str]], n: int) -> Optional[Tuple[Dict[str, Optional[str]], str]]:
    """Adapt index-range splits of one file that do not fit its ``n`` samples.

    ``specs``: ``{"train": ..., "val": ..., "test": ...}`` split strings. Only the index ranges of
    the main file are considered (splits naming other files stay as they are), and only when the
    train split is one. When they fit (every bound within ``[-n, n]``, non-empty, val and test
    disjoint from train; or overlapping on a file of any size, an error reported later), returns
    ``None`` (use them as they are). Otherwise returns ``(new specs,
    message)``: the same proportions of the file, evaluation splits at its end (val and test share
    their samples when the config's did), e.g. ``0:1000 / -100: / -100:`` on 50 samples ->
    ``0:45 / 45:50 / 45:50``.
    """
    given = {k: v for k, v in specs.items() if not _is_none(v) and is_index_range(v)}
    if "train" not in given:
        return None

    def span(spec, size):
        m = _RANGE.match(spec)
        a, b, _ = slice(_bound(m.group(1), size, "", spec), _bound(m.group(2), size, "", spec)).indices(size)
        return a, b

    def disjoint(size):
        a, b = span(given["train"], size)
        return all(min(b, d) <= max(a, c) for c, d in (span(v, size) for k, v in given.items() if k != "train"))

    if all(_fits(v, n) for v in given.values()) and (disjoint(n) or not disjoint(10**12)):
        # they fit; or they overlap whatever the file's size (a mistake in the splits, reported as such)
        return None
    evals = [k for k in ("val", "test") if k in given]
    shared = len(evals) == 2 and given["val"].replace(" ", "") == given["test"].replace(" ", "")
    groups = [evals] if shared else [[k] for k in evals]
    sizes = [_size(given["train"]) or 0] + [_size(given[g[0]]) or 0 for g in groups]
    if sizes[0] <= 0 or any(s <= 0 for s in sizes[1:]):  # open-ended ranges: 90 % train, the rest split evenly
        sizes = [9.0 * max(1, len(groups))] + [1.0] * len(groups)
    need = 1 + len(groups)
    if n < need:
        raise ValueError(
            f"the file has {n} sample(s): the splits {', '.join(f'{k}={v!r}' for k, v in given.items())} "
            f"need at least {need} (one per split); generate more samples"
        )
    total = float(sum(sizes))
    counts = [max(1, int(math.floor(n * s / total))) for s in sizes[1:]]
    while sum(counts) > n - 1:  # leave at least one training sample
        counts[int(np.argmax(counts))] -= 1
    out: Dict[str, Optional[str]] = dict(specs)
    stop = n
    for group, c in reversed(list(zip(groups, counts))):
        for k in group:
            out[k] = f"{stop - c}:{stop}"
        stop -= c
    out["train"] = f"0:{stop}"
    before = ", ".join(f"{k} {v}" for k, v in given.items())
    after = ", ".join(f"{k} {out[k]}" for k in given)
    fractions = ", ".join(f"{k} {(int(out[k].split(':')[1]) - int(out[k].split(':')[0])) / n:.3g}" for k in given)
    message = (
        f"the index splits ({before}) do not fit the {n} samples of the file; split by fraction instead: "
        f"{after} (fractions {fractions}); set data.train/val/test to choose"
    )
    return out, message

"""Progress of long commands: one line updated in place on a terminal, periodic lines in a log.

:func:`progress_bar` returns a ``tqdm`` bar (elapsed time, rate and ETA). On a terminal it redraws
one line; when the stream is not a terminal (a log file, a pipe, CI) it writes a complete line
every ``NEURALOPS_PROGRESS_INTERVAL`` seconds (default 15) and a last one when the bar closes,
instead of tqdm's carriage-return redraws, which a log would show as one endless line.

:func:`stage` times a step whose length is known only from an estimate (e.g. a benchmark of a
fixed size) and prints ``what ... done in S s``.
"""
from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager

__all__ = ["progress_bar", "LineStream", "interval", "stage"]

_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def interval() -> float:
    """Seconds between progress lines when the output is not a terminal (``NEURALOPS_PROGRESS_INTERVAL``)."""
    text = os.environ.get("NEURALOPS_PROGRESS_INTERVAL", "15")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"NEURALOPS_PROGRESS_INTERVAL must be a positive number of seconds, got {text!r}")
    return value


class LineStream:
    """A text stream for tqdm that turns its in-place redraws into whole lines: each ``\\r``-led
    redraw becomes one line (cursor escapes removed, an unchanged line not repeated)."""

    def __init__(self, stream):
        self.stream = stream
        self._last = None

    def write(self, text: str) -> int:
        for piece in re.split(r"[\r\n]", _ESCAPES.sub("", text)):
            piece = piece.rstrip()
            if piece and piece != self._last:
                self.stream.write(piece + "\n")
                self._last = piece
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(total=None, desc: str = "", *, file=None, **kwargs):
    """A ``tqdm`` bar on ``file`` (default stderr): redrawn in place on a terminal, else one line
    every :func:`interval` seconds (and at the end). ``kwargs`` go to tqdm (``unit``, ``position``,
    ``bar_format``, ...)."""
    from tqdm import tqdm

    stream = file if file is not None else sys.stderr
    if not _is_tty(stream):
        stream = LineStream(stream)
        kwargs["mininterval"] = interval()
        kwargs["maxinterval"] = max(kwargs["mininterval"], 10.0)
        kwargs.pop("dynamic_ncols", None)
        kwargs.setdefault("ncols", 110)
        kwargs.pop("position", None)        # cursor moves mean nothing in a log
    return tqdm(total=total, desc=desc, file=stream, **kwargs)


@contextmanager
def stage(what: str, expected_seconds: float | None = None, file=None):
    """Announce a step, then say how long it took (``expected_seconds``: the measured time a
    reader can compare with, printed up front as the ETA)."""
    stream = file if file is not None else sys.stderr
    eta = f" (about {expected_seconds:.0f} s)" if expected_seconds else ""
    print(f"{what}{eta} ...", file=stream, flush=True)
    t0 = time.perf_counter()
    yield
    print(f"{what}: done in {time.perf_counter() - t0:.1f} s", file=stream, flush=True)

"""Progress of long commands: one line updated in place on a terminal, periodic lines in a log.

:func:`progress_bar` returns a ``tqdm`` bar (elapsed time, rate and ETA). On a terminal it redraws
one line; when the stream is not a terminal (a log file, a pipe, CI) it writes a complete line
every ``NEURALOPS_PROGRESS_INTERVAL`` seconds (default 15) and a last one when the bar closes,
instead of tqdm's carriage-return redraws, which a log would show as one endless line.
"""

from __future__ import annotations

import os
import re
import sys

from tqdm import tqdm

__all__ = ["progress_bar", "LineStream", "LogBar", "interval"]

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


class LogBar(tqdm):
    """tqdm for a log: postfix updates wait for the next periodic line (a postfix set after every
    sample would otherwise write a line per sample)."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=False)


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(total=None, desc: str = "", *, file=None, **kwargs):
    """A ``tqdm`` bar on ``file`` (default stderr): redrawn in place on a terminal, else one line
    every :func:`interval` seconds (and at the end). ``kwargs`` go to tqdm (``unit``, ``position``,
    ``bar_format``, ...)."""
    stream = file if file is not None else sys.stderr
    if _is_tty(stream):
        return tqdm(total=total, desc=desc, file=stream, **kwargs)
    kwargs["mininterval"] = interval()
    kwargs["maxinterval"] = max(kwargs["mininterval"], 10.0)
    kwargs.pop("dynamic_ncols", None)
    kwargs.setdefault("ncols", 110)
    kwargs.pop("position", None)  # cursor moves mean nothing in a log
    return LogBar(total=total, desc=desc, file=LineStream(stream), **kwargs)

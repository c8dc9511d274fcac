"""Progress of long commands (datagen/progress.py, scripts/demo.sh's ticker): one line redrawn in
place on a terminal, whole periodic lines with elapsed time and ETA in a log."""

import io
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from datagen.progress import LineStream, interval, progress_bar

ROOT = Path(__file__).resolve().parents[2]


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_whole_lines_with_rate_and_eta(monkeypatch):
    monkeypatch.setenv("NEURALOPS_PROGRESS_INTERVAL", "0.01")
    log = io.StringIO()
    bar = progress_bar(total=5, desc="darcy", file=log, unit="sample")
    for _ in range(5):
        time.sleep(0.02)
        bar.update(1)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) >= 3 and all(line.startswith("darcy:") for line in lines)
    assert re.search(r"5/5 \[\d\d:\d\d<00:00", lines[-1])  # elapsed < remaining, the final count
    assert any(re.search(r"[1-4]/5 \[\d\d:\d\d<\d\d:\d\d", line) for line in lines)  # an ETA along the way
    assert len(lines) == len(set(lines))


def test_a_log_is_not_flooded(monkeypatch):
    monkeypatch.setenv("NEURALOPS_PROGRESS_INTERVAL", "60")
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="ns", file=log)
    for i in range(1000):
        bar.set_postfix_str(f"its {i}")  # as the elliptic generator does after every sample
        bar.set_postfix(batch=i)  # and the Navier-Stokes one after every batch
        bar.update(1)
    bar.close()
    assert len(log.getvalue().splitlines()) <= 3  # first, (maybe one), last


def test_a_terminal_gets_one_line_redrawn_in_place():
    tty = _Tty()
    bar = progress_bar(total=3, desc="eval", file=tty, mininterval=0)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert "\r" in tty.getvalue() and tty.getvalue().count("\n") <= 1


def test_line_stream_strips_cursor_moves():
    out = io.StringIO()
    s = LineStream(out)
    s.write("\r\x1b[Aa: 1/2\x1b[B")
    s.write("\ra: 1/2")
    s.write("\ra: 2/2\n")
    assert out.getvalue() == "a: 1/2\na: 2/2\n"


def test_bad_interval_is_refused(monkeypatch):
    monkeypatch.setenv("NEURALOPS_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ValueError, match="NEURALOPS_PROGRESS_INTERVAL must be a positive number of seconds"):
        interval()


def test_demo_ticker_prints_eta_lines_and_keeps_the_exit_status(tmp_path):
    """scripts/demo.sh's with_progress, run as the demo runs it (stderr not a terminal)."""
    script = (ROOT / "scripts" / "demo.sh").read_text()
    body = re.search(r"^with_progress\(\) \{.*?^\}", script, re.S | re.M).group(0)
    test = tmp_path / "t.sh"
    test.write_text(
        "set -euo pipefail\n" + body + "\n"
        "with_progress 1 step bash -c 'sleep 2.5; echo out'\n"
        "with_progress 9 bad bash -c 'exit 3' || echo \"status $?\"\n"
    )
    proc = subprocess.run(
        ["bash", str(test)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, NEURALOPS_PROGRESS_INTERVAL="1"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["out", "status", "3"]
    err = proc.stderr.splitlines()
    assert "\r" not in proc.stderr
    assert any(re.fullmatch(r"step: \d s elapsed, (ETA \d s|over the 1 s measured)", line) for line in err), err
    assert any(re.fullmatch(r"step: done in \d s \(exit 0\)", line) for line in err), err
    assert "bad: done in 0 s (exit 3)" in err or "bad: done in 1 s (exit 3)" in err

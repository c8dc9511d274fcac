"""Issue 17, item 5: the README's Measured table quotes a figure only with a record that states its
conditions (benchmarks/conditions.py), or says that its record predates them."""

import glob
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
MARK = "(record predates conditions)"
NEEDED = ("machine", "load_before", "load_after", "allocator", "versions")


def measured_rows():
    with open(os.path.join(ROOT, "README.md")) as fh:
        text = fh.read()
    section = text.split("\n## Measured", 1)[1].split("\n#", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| what |")]


def has_conditions(path):
    with open(path) as fh:
        record = json.load(fh)
    cond = record.get("conditions") if isinstance(record, dict) else None
    return isinstance(cond, dict) and all(k in cond for k in NEEDED)


def test_every_measured_row_cites_a_record_with_conditions_or_says_it_predates_them():
    rows = measured_rows()
    assert len(rows) > 10
    problems = []
    for row in rows:
        names = re.findall(r"([\w*\-]+\.json)", row)
        paths = sorted({p for n in names for p in glob.glob(os.path.join(RESULTS, os.path.basename(n)))})
        for n in names:
            if not glob.glob(os.path.join(RESULTS, os.path.basename(n))):
                problems.append(f"{row[:60]}...: cites {n}, which is not in benchmarks/results/")
        if MARK in row:
            continue
        if not paths:
            problems.append(f"{row[:60]}...: cites no record and is not marked {MARK!r}")
        for p in paths:
            if not has_conditions(p):
                problems.append(f"{row[:60]}...: {os.path.basename(p)} has no conditions; re-run it or mark {MARK!r}")
    assert not problems, "\n".join(problems)

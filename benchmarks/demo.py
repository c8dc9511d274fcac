"""Benchmark: ``make demo`` end to end (the environment already set up), with its conditions.

Runs ``bash scripts/demo.sh`` under the allocator setting the Makefile uses, times it, and writes
one record with the demo's own results: the test metrics of the trained MgNO
(``reports/demo/metrics.json``, FNO-protocol relative L2 and relative H1) and the SKR-vs-GMRES step
(``reports/demo/skr_vs_gmres.json``: iterations, seconds per solve, iteration cost).

    python benchmarks/demo.py --json benchmarks/results/make_demo.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import conditions  # benchmarks/conditions.py (this folder is on sys.path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def allocator_env() -> dict:
    """The environment ``make demo`` runs with (``datagen.allocator``'s setting)."""
    out = subprocess.run(
        [sys.executable, "-m", "datagen.allocator"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return dict(kv.split("=", 1) for kv in out if "=" in kv)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "make_demo.json"))
    args = p.parse_args(argv)
    conditions.mark_start()
    env = {**os.environ, **allocator_env()}
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "demo.sh")], cwd=ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-4000:] + proc.stderr[-4000:], file=sys.stderr)
        print(f"demo.py: scripts/demo.sh failed with exit status {proc.returncode}", file=sys.stderr)
        return 1
    reports = os.path.join(ROOT, "reports", "demo")
    with open(os.path.join(reports, "metrics.json")) as fh:
        metrics = json.load(fh)["runs"]["this run"]["metrics"]
    with open(os.path.join(reports, "skr_vs_gmres.json")) as fh:
        skr = json.load(fh)["families"][0]
    gm, sk = skr["methods"]["gmres"], skr["methods"]["skr"]
    record = {
        "benchmark": "make demo (environment set up)",
        "seconds": seconds,
        # the demo's own processes ran with the Makefile's allocator setting (conditions below
        # describe this wrapper process)
        "demo_allocator": {k: v for k, v in env.items() if k in allocator_env()},
        "test_metrics": {k: metrics[k] for k in ("relative_l2", "relative_h1") if k in metrics},
        "skr_vs_gmres": {
            "family": skr["family"],
            "resolution": skr["resolution"],
            "systems": skr["n"],
            "iterations": [sk["its"], gm["its"]],
            "seconds_per_solve": [sk["solve_s"], gm["solve_s"]],
            "iteration_cost_skr_over_gmres": sk["s_per_iteration"] / gm["s_per_iteration"],
        },
    }
    print(
        f"make demo: {seconds / 60:.2f} minutes; test relative L2 {record['test_metrics'].get('relative_l2')}; "
        f"SKR {sk['its']:.0f} vs GMRES {gm['its']:.0f} iterations, iteration cost "
        f"{record['skr_vs_gmres']['iteration_cost_skr_over_gmres']:.2f}x"
    )
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

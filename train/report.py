"""Evaluation reports: ``metrics.json``, ``report.md`` next to the published numbers, PNG figures.

Published numbers
-----------------
:data:`PUBLISHED_TABLES` holds the papers' numbers listed with their sources in docs/published.md, one
:class:`PublishedTable` per (benchmark, setting, metric). Each table names the metric of this
toolkit that it is compared with and states, in its own words, what the publication measured, so
a reader can see whether the two are the same quantity (they are for the FNO Navier-Stokes
tables; where they may not be, the table says so). :data:`PUBLISHED` is the flat view keyed by
``(benchmark, setting, model)``.

Report folder
-------------
``write_report(out_dir, results, ...)`` writes

- ``metrics.json``: every run's scalar metrics, per-step / per-channel curves, band errors,
  spectra, the definition string of every metric, and the published tables for the setting;
- ``report.md``: a Markdown table of all metrics (one column per run: a single run, or e.g.
  "before refinement" / "after refinement"), one table per published table with the run(s) next
  to the published models, the per-step curve, the definitions, and the figures;
- ``fields.png``, ``error_vs_time.png``, ``spectra.png`` (when the fields are given).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .metrics import METRIC_DEFINITIONS

__all__ = [
    "PublishedTable",
    "PUBLISHED_TABLES",
    "PUBLISHED",
    "SETTINGS",
    "published_tables",
    "setting_info",
    "write_report",
    "markdown_report",
]

FNO_NS_SOURCE = "Li et al., Fourier Neural Operator, ICLR 2021 (arXiv:2010.08895), Table 1 (docs/published.md)"
FNO_NS_METRIC = (
    "relative L2 per test sample over all predicted (x, y, t) (inputs: first 10 snapshots), "
    "mean over test samples, on de-normalised vorticity: the same definition as this "
    "toolkit's relative_l2"
)
_MGNO_L2 = "relative L2 of the solution u per test sample, mean over test samples (MgNO paper)"
_MGNO_H1 = (
    "relative H1 per test sample, mean over test samples, in MgNO's own HsLoss: "
    "||w (u - v)^|| / ||w v^|| with v^ the orthonormal 2-d FFT of the (Dirichlet) "
    "data treated as periodic, w = sqrt(1 + k_x^2 + k_y^2) on integer wavenumbers, "
    "each |k_i| >= 20 set to 0 (truncation); not this toolkit's sine-series relative_h1"
)


@dataclass(frozen=True)
class PublishedTable:
    """Published numbers of one metric in one benchmark setting.

    key: the setting's id (``evaluate(..., setting=key)``); benchmark / setting: human-readable;
    metric: the name of this toolkit's metric the numbers are put next to (a key of
    :data:`train.metrics.METRIC_DEFINITIONS`); metric_definition: what the publication measured;
    values: ``model -> number``; layout: tensor layout of that benchmark's predictions.
    """

    key: str
    benchmark: str
    setting: str
    metric: str
    metric_definition: str
    source: str
    values: Mapping[str, float]
    layout: str
    notes: str = ""


PUBLISHED_TABLES: Tuple[PublishedTable, ...] = (
    PublishedTable(
        key="fno_ns_nu1e-3_T50_N1000",
        benchmark="FNO Navier-Stokes (vorticity, unit torus, 64^2)",
        setting="nu=1e-3, T=50, 1000 train / 200 test, 10 input -> 40 predicted snapshots",
        metric="relative_l2",
        metric_definition=FNO_NS_METRIC,
        source=FNO_NS_SOURCE,
        layout="trajectory",
        values={"FNO-3D": 0.0086, "FNO-2D": 0.0128, "U-Net": 0.0245, "TF-Net": 0.0225, "ResNet": 0.0701},
    ),
    PublishedTable(
        key="fno_ns_nu1e-4_T30_N10000",
        benchmark="FNO Navier-Stokes (vorticity, unit torus, 64^2)",
        setting="nu=1e-4, T=30, 10000 train, 10 input -> 20 predicted snapshots",
        metric="relative_l2",
        metric_definition=FNO_NS_METRIC,
        source=FNO_NS_SOURCE,
        layout="trajectory",
        values={"FNO-3D": 0.0820, "FNO-2D": 0.0834, "U-Net": 0.1190, "TF-Net": 0.1168, "ResNet": 0.2311},
    ),
    PublishedTable(
        key="fno_ns_nu1e-4_T30_N1000",
        benchmark="FNO Navier-Stokes (vorticity, unit torus, 64^2)",
        setting="nu=1e-4, T=30, 1000 train, 10 input -> 20 predicted snapshots",
        metric="relative_l2",
        metric_definition=FNO_NS_METRIC,
        source=FNO_NS_SOURCE,
        layout="trajectory",
        values={"FNO-3D": 0.1918, "FNO-2D": 0.1559, "U-Net": 0.2051, "TF-Net": 0.2253, "ResNet": 0.2871},
    ),
    PublishedTable(
        key="fno_ns_nu1e-5_T20_N1000",
        benchmark="FNO Navier-Stokes (vorticity, unit torus, 64^2)",
        setting="nu=1e-5, T=20, 1000 train / 200 test, 10 input -> 10 predicted snapshots",
        metric="relative_l2",
        metric_definition=FNO_NS_METRIC,
        source=FNO_NS_SOURCE,
        layout="trajectory",
        values={"FNO-3D": 0.1893, "FNO-2D": 0.1556, "U-Net": 0.1982, "TF-Net": 0.2268, "ResNet": 0.2753},
    ),
    PublishedTable(
        key="fno_ns_nu1e-5_T20_N1000",
        benchmark="FNO Navier-Stokes (vorticity, unit torus, 64^2)",
        setting="nu=1e-5, T=20, 10-step rollout",
        metric="relative_l2",
        metric_definition=(
            "rollout relative L2 as reported by an independent rerun of the published MgNO "
            "code; that code's reduction is not verified to be the FNO protocol"
        ),
        source="MgNO (He, Liu, Xu, ICLR 2024), independent rerun (docs/published.md)",
        layout="trajectory",
        values={"MgNO (independent rerun)": 0.0160},
        notes="Kept apart from the FNO table because the metric may differ.",
    ),
    PublishedTable(
        key="darcy_rough_256",
        benchmark="Darcy rough (darcy_alpha2_tau5_512 subsampled to 256^2)",
        setting="1280 train / 112 test",
        metric="relative_l2",
        metric_definition=_MGNO_L2,
        source="MgNO (He, Liu, Xu, ICLR 2024) (docs/published.md)",
        layout="steady",
        values={"MgNO": 0.00339, "MgNO (independent rerun)": 0.00361},
    ),
    PublishedTable(
        key="darcy_rough_256",
        benchmark="Darcy rough (darcy_alpha2_tau5_512 subsampled to 256^2)",
        setting="1280 train / 112 test",
        metric="relative_h1",
        metric_definition=_MGNO_H1,
        source="MgNO (He, Liu, Xu, ICLR 2024) (docs/published.md)",
        layout="steady",
        values={"MgNO": 0.01380},
    ),
    PublishedTable(
        key="darcy_multiscale_trig",
        benchmark="Darcy multiscale trigonometric coefficient",
        setting="as in the MgNO paper",
        metric="relative_l2",
        metric_definition=_MGNO_L2,
        source="MgNO (He, Liu, Xu, ICLR 2024) (docs/published.md)",
        layout="steady",
        values={"MgNO": 0.00715},
    ),
    PublishedTable(
        key="darcy_multiscale_trig",
        benchmark="Darcy multiscale trigonometric coefficient",
        setting="as in the MgNO paper",
        metric="relative_h1",
        metric_definition=_MGNO_H1,
        source="MgNO (He, Liu, Xu, ICLR 2024) (docs/published.md)",
        layout="steady",
        values={"MgNO": 0.01756},
    ),
    PublishedTable(
        key="darcy_smooth_211",
        benchmark="Darcy smooth (FNO piecewise-constant data, 421 -> 211^2)",
        setting="FNO Darcy split",
        metric="relative_l2",
        metric_definition="relative L2 per test sample, mean over test samples (independent rerun of MgNO code)",
        source="MgNO, independent rerun (docs/published.md)",
        layout="steady",
        values={"MgNO (independent rerun)": 0.00170},
    ),
    PublishedTable(
        key="skr_darcy_n2500",
        benchmark="SKR Darcy (neural operator trained on solver-generated data)",
        setting="n = 2500 unknowns, 5000 training samples",
        metric="relative_l2",
        metric_definition="test relative error of an FNO trained on the data (SKR paper); reduction not stated",
        source="Wang et al., Sorting Krylov Recycling, ICLR 2024 (docs/published.md)",
        layout="steady",
        values={"NO on SKR data": 0.02, "NO on GMRES data": 0.02},
    ),
    PublishedTable(
        key="sinenet_shallow_water",
        benchmark="SineNet shallow water (PDEArena), autoregressive rollout",
        setting="SineNet-8, circular vs zero padding",
        metric="nrmse",
        metric_definition=(
            "rollout relative L2 per sample, step and channel over (x, y), averaged: equal to this toolkit's nrmse"
        ),
        source="Zhang et al., SineNet, ICLR 2024 (docs/published.md)",
        layout="trajectory_channels",
        values={"SineNet-8 (circular padding)": 0.0178, "SineNet-8 (zero padding)": 0.0419},
    ),
)

PUBLISHED: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
for _table in PUBLISHED_TABLES:
    for _model, _value in _table.values.items():
        PUBLISHED[(_table.benchmark, _table.setting, _model)] = {
            "value": _value,
            "metric": _table.metric,
            "key": _table.key,
            "source": _table.source,
        }

SETTINGS: Dict[str, Dict[str, str]] = {}
for _table in PUBLISHED_TABLES:
    SETTINGS.setdefault(
        _table.key, {"benchmark": _table.benchmark, "layout": _table.layout, "primary_metric": _table.metric}
    )


def published_tables(setting: Optional[str]) -> List[PublishedTable]:
    """The published tables of a setting id (``[]`` for ``None``); unknown ids raise ``ValueError``."""
    if setting is None:
        return []
    setting_info(setting)
    return [t for t in PUBLISHED_TABLES if t.key == setting]


def setting_info(setting: str) -> Dict[str, str]:
    """``{"benchmark", "layout", "primary_metric"}`` of a setting id."""
    if setting not in SETTINGS:
        raise ValueError(
            f"unknown evaluation setting {setting!r}; known settings: {', '.join(sorted(SETTINGS))} "
            "(or None for no published comparison)"
        )
    return SETTINGS[setting]


# --------------------------------------------------------------------------------------------
# report writing
# --------------------------------------------------------------------------------------------
def _as_runs(results: Mapping[str, Any]) -> Dict[str, Mapping[str, Any]]:
    """One evaluate() result -> {"this run": result}; a mapping label -> result passes through."""
    if "metrics" in results:
        return {"this run": results}
    runs = dict(results)
    if not runs or not all(isinstance(r, Mapping) and "metrics" in r for r in runs.values()):
        raise ValueError("results must be one evaluate() result or a mapping label -> evaluate() result")
    return runs


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


def _scalar_rows(runs: Mapping[str, Mapping[str, Any]]) -> List[Tuple[str, List[Any]]]:
    """Rows ``(metric label, [value per run])``; band errors get one row per band."""
    names: List[str] = []
    for r in runs.values():
        for name in r["metrics"]:
            if name not in names:
                names.append(name)
    rows = []
    for name in names:
        values = [r["metrics"].get(name) for r in runs.values()]
        if any(isinstance(v, Mapping) for v in values):
            bands: List[str] = []
            for v in values:
                for b in v or {}:
                    if b not in bands:
                        bands.append(b)
            for b in bands:
                rows.append((f"{name} [{b}]", [(v or {}).get(b) for v in values]))
        else:
            rows.append((name, values))
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown_report(
    results: Mapping[str, Any],
    setting: Optional[str] = None,
    figures: Optional[Mapping[str, str]] = None,
    title: str = "Evaluation report",
    max_step_rows: int = 25,
    context: Optional[Sequence[str]] = None,
) -> str:
    """The text of ``report.md`` (see the module docstring). ``context``: lines stating what was
    evaluated (checkpoint, data, split, epochs, train and test resolution, published-setting
    match), listed under the title."""
    runs = _as_runs(results)
    labels = list(runs)
    first = next(iter(runs.values()))
    setting = setting if setting is not None else first.get("setting")
    lines = [f"# {title}", ""]
    info = [f"{len(labels)} run(s): {', '.join(labels)}"]
    for key in ("n_samples", "n_steps", "n_channels", "grid_shape", "layout"):
        if key in first:
            info.append(f"{key}: {first[key]}")
    if setting:
        info.append(f"setting: `{setting}` ({setting_info(setting)['benchmark']})")
    info += list(context or ())
    lines += ["- " + item for item in info] + [""]

    notes = [f"{label}: {note}" for label, r in runs.items() for note in r.get("notes", [])]
    if notes:
        lines += ["Notes:", ""] + ["- " + note for note in notes] + [""]

    lines += ["## Metrics", ""]
    rows = [[name] + [_fmt(v) for v in values] for name, values in _scalar_rows(runs)]
    lines += _table(["metric"] + labels, rows) + [""]
    edges = first.get("band_edges")
    if edges:
        lines += [
            "Wavenumber bands on the shell index round(|k|): "
            + ", ".join(
                f"{b} [{lo:g}, {hi:g})" for b, (lo, hi) in zip(first.get("band_names", []), zip(edges, edges[1:]))
            ),
            "",
        ]

    for table in published_tables(setting):
        lines += [
            f"## Published: {table.benchmark}",
            "",
            f"Setting: {table.setting}. Metric: `{table.metric}`.",
            "",
            f"Published metric definition: {table.metric_definition}.",
            "",
            f"This toolkit's `{table.metric}`: {METRIC_DEFINITIONS.get(table.metric, '(see metrics.json)')}",
            "",
            f"Source: {table.source}." + (f" {table.notes}" if table.notes else ""),
            "",
        ]
        trows = [[f"**{label}** (this toolkit)", _fmt(r["metrics"].get(table.metric))] for label, r in runs.items()]
        differs = sorted({r["published_protocol"] for r in runs.values() if r.get("published_protocol")})
        mark = f"published; {' / '.join(differs)}" if differs else "published"
        trows += [[f"{model} ({mark})", _fmt(value)] for model, value in table.values.items()]
        lines += _table(["model", table.metric], trows) + [""]

    curves = [(label, r.get("per_step", {}).get("relative_l2")) for label, r in runs.items()]
    curves = [(label, c) for label, c in curves if c]
    if curves and len(curves[0][1]) > 1:
        times = first.get("times") or list(range(len(curves[0][1])))
        n = len(times)
        stride = max(1, math.ceil(n / max_step_rows))
        idx = list(range(0, n, stride))
        if idx[-1] != n - 1:
            idx.append(n - 1)
        lines += ["## Relative L2 per predicted step (mean over test samples)", ""]
        srows = [[_fmt(times[i])] + [_fmt(c[i]) for _, c in curves] for i in idx]
        lines += _table(["time"] + [label for label, _ in curves], srows) + [""]
        if stride > 1:
            lines += [f"(every {stride}th step shown; all steps in metrics.json)", ""]

    channel_curves = [(label, r.get("per_channel", {}).get("relative_l2")) for label, r in runs.items()]
    channel_curves = [(label, c) for label, c in channel_curves if c and len(c) > 1]
    if channel_curves:
        lines += ["## Relative L2 per channel (mean over test samples)", ""]
        crows = [[str(c)] + [_fmt(v[c]) for _, v in channel_curves] for c in range(len(channel_curves[0][1]))]
        lines += _table(["channel"] + [label for label, _ in channel_curves], crows) + [""]

    lines += ["## Definitions", ""]
    for name in sorted(first.get("definitions", METRIC_DEFINITIONS)):
        lines.append(f"- `{name}`: {first.get('definitions', METRIC_DEFINITIONS)[name]}")
    lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for name, path in figures.items():
            lines += [f"![{name}]({os.path.basename(path)})", ""]
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")  # strict JSON has no nan/inf
    return obj


def write_report(
    out_dir: str,
    results: Mapping[str, Any],
    *,
    setting: Optional[str] = None,
    predictions: Any = None,
    targets: Any = None,
    sample: int = 0,
    channel: int = 0,
    n_frames: int = 4,
    title: str = "Evaluation report",
    extra: Optional[Mapping[str, Any]] = None,
    context: Optional[Sequence[str]] = None,
    inputs: Any = None,
    input_labels: Optional[Sequence[str]] = None,
    n_samples: int = 4,
) -> Dict[str, str]:
    """Write the report folder; return ``{"metrics_json", "report_md", <figure name>: path}``.

    results: one :func:`train.evaluate.evaluate` result, or ``label -> result`` for side-by-side
        columns (e.g. ``{"before refinement": r0, "after refinement": r1}``).
    predictions / targets: the evaluated fields in the canonical ``(N, T, C, X, Y)`` layout (or
        ``label -> predictions`` matching ``results``); when given, ``fields.png`` shows rows of
        input | truth | prediction | error (:func:`train.plots.field_rows_figure`), channel
        ``channel``: steady data, samples ``sample .. sample + n_samples - 1``; trajectories,
        sample ``sample`` at ``n_frames`` evenly spaced steps, plus ``rollout.gif`` / ``.mp4``.
    inputs: the model inputs of the same samples (steady ``(N, C_in, X, Y)``, trajectories
        ``(N, T_in, C, X, Y)``), physical units; ``input_labels``: a name per steady input channel.
    extra: anything else to store in ``metrics.json`` (checkpoint path, config, timings).
    context: lines for the head of ``report.md`` (what was evaluated; also stored in metrics.json).
    """
    from . import plots

    runs = _as_runs(results)
    first = next(iter(runs.values()))
    setting = setting if setting is not None else first.get("setting")
    tables = published_tables(setting)
    os.makedirs(out_dir, exist_ok=True)
    paths: Dict[str, str] = {}
    figures: Dict[str, str] = {}

    times = first.get("times")
    curves = {
        label: r["per_step"]["relative_l2"]
        for label, r in runs.items()
        if len(r.get("per_step", {}).get("relative_l2") or ()) > 1
    }  # steady data: no time axis
    if curves:
        reference = {}
        for table in tables:
            if table.metric == "relative_l2":
                reference.update({f"{m} (published, whole trajectory)": v for m, v in table.values.items()})
        figures["error_vs_time"] = plots.plot_error_vs_time(
            curves,
            os.path.join(out_dir, "error_vs_time.png"),
            times=times,
            title="relative L2 per predicted step (mean over test samples)",
            reference=reference,
            spread={
                label: r["per_sample"]["relative_l2_per_step"]
                for label, r in runs.items()
                if "relative_l2_per_step" in r.get("per_sample", {})
            },
        )
    spectra = {}
    for label, r in runs.items():
        spec = r.get("spectrum")
        if spec:
            spectra.setdefault("truth", spec["truth"])
            spectra[label if len(runs) > 1 else "prediction"] = spec["prediction"]
    if spectra:
        figures["spectra"] = plots.plot_energy_spectra(
            spectra,
            os.path.join(out_dir, "spectra.png"),
            band_edges=first.get("band_edges"),
            title="isotropic energy spectrum (mean over samples, steps, channels)",
        )
    if predictions is not None and targets is not None:
        preds = (
            predictions
            if isinstance(predictions, Mapping)
            else {(next(iter(runs)) if len(runs) == 1 else "prediction"): predictions}
        )
        for label, field in list(preds.items()) + [("targets", targets)]:
            if getattr(field, "ndim", None) != 5:
                raise ValueError(
                    f"{label} for the field figure must be (N, T, C, X, Y), got shape "
                    f"{tuple(getattr(field, 'shape', ()))}; convert with train.metrics.to_canonical"
                )
        if not (0 <= sample < targets.shape[0] and 0 <= channel < targets.shape[2]):
            raise ValueError(
                f"sample {sample} / channel {channel} out of range for targets of shape {tuple(targets.shape)}"
            )
        figures.update(
            plots.report_field_figures(
                out_dir,
                preds,
                targets,
                inputs,
                steady=first.get("layout") == "steady",
                sample=sample,
                channel=channel,
                n_samples=n_samples,
                n_frames=n_frames,
                times=times,
                input_labels=input_labels,
            )
        )

    record = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "setting": setting,
        "runs": runs,
        "definitions": dict(first.get("definitions", METRIC_DEFINITIONS)),
        "published": [
            {
                "benchmark": t.benchmark,
                "setting": t.setting,
                "metric": t.metric,
                "metric_definition": t.metric_definition,
                "source": t.source,
                "values": dict(t.values),
                "notes": t.notes,
            }
            for t in tables
        ],
        "figures": {name: os.path.basename(p) for name, p in figures.items()},
    }
    if extra:
        record["extra"] = extra
    if context:
        record["context"] = list(context)
    paths["metrics_json"] = os.path.join(out_dir, "metrics.json")
    with open(paths["metrics_json"], "w") as f:
        json.dump(_jsonable(record), f, indent=1, allow_nan=False)
    paths["report_md"] = os.path.join(out_dir, "report.md")
    with open(paths["report_md"], "w") as f:
        f.write(markdown_report(runs, setting=setting, figures=figures, title=title, context=context))
    paths.update(figures)
    return paths

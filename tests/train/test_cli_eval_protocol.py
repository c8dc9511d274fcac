"""``neuralops-eval`` says which data, split, epochs and protocol a run used, and marks published
numbers of another protocol (a 10-sample, 3-epoch run is not the paper's 1000-sample protocol).

The prediction step (:func:`train.module.predict_split`) is replaced by fixed arrays so that only
the report logic runs; the data file is a real data-contract file with FNO Navier-Stokes provenance.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from datagen.dataset import DatasetWriter, FieldSpec, Grid  # noqa: E402


def _ns_file(path, n=2, T=50, s=8):
    x = np.arange(s) / s
    with DatasetWriter(
        path,
        pde="navier_stokes_2d",
        spec={"recipe": "fno", "viscosity": 1e-3},
        n_samples=n,
        seed=0,
        fields={"vorticity": FieldSpec((T, s, s), "state")},
        grid=Grid({"x": x, "y": x, "t": np.arange(1.0, T + 1)}, {"x": "periodic", "y": "periodic"}),
        solver=[],
    ) as w:
        for i in range(n):
            w.write(i, {"vorticity": np.random.default_rng(i).standard_normal((T, s, s))})
    return str(path)


def _fake_predict(path, n_train, epochs, s=8):
    rng = np.random.default_rng(0)
    target = torch.as_tensor(rng.standard_normal((2, 40, 1, s, s)), dtype=torch.float32)

    from datagen.contract import Grid as ContractGrid
    from datagen.dataset import open_dataset

    with open_dataset(path) as ds:
        g = ContractGrid.from_dataset(ds)
    grid = ContractGrid(tuple(a for a in g.axes if a.name in ("x", "y")), g.times)  # as predict_split gives it

    def predict_split(ckpt, data=None, split="test", batch_size=None, device="cpu", progress=None):
        if progress is not None:
            progress(0, 1)
            progress(1, 1)
        return {
            "prediction": target * 1.1,
            "target": target,
            "input": target[:, :10],
            "indices": np.array([0, 1]),
            "path": path,
            "grid": grid,
            "io": {
                "layout": "trajectory",
                "t_in": 10,
                "t_out": 40,
                "start": 0,
                "train_path": path,
                "inputs": ["vorticity"],
            },
            "model_name": "fno3d",
            "train_resolution": [s, s],
            "resolution": [s, s],
            "n_train": n_train,
            "epochs": epochs,
            "global_step": 3,
        }

    return predict_split


@pytest.fixture
def run_eval(tmp_path, monkeypatch, capsys):
    import train.module
    import train.plots
    from train.evaluate import main

    # the figures are tested in test_figures.py; here only what report.md says
    monkeypatch.setattr(train.plots, "plot_error_vs_time", lambda *a, **k: "error_vs_time.png")
    monkeypatch.setattr(train.plots, "plot_energy_spectra", lambda *a, **k: "spectra.png")
    monkeypatch.setattr(train.plots, "report_field_figures", lambda *a, **k: {})

    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"not read: predict_split is replaced")
    data = _ns_file(tmp_path / "ns.h5")

    def run(n_train, epochs, *extra):
        monkeypatch.setattr(train.module, "predict_split", _fake_predict(data, n_train, epochs))
        out = tmp_path / f"report_{n_train}_{epochs}_{len(extra)}"
        assert main(["--ckpt", str(ckpt), "--data", data, "--out", str(out), "--no-progress", *extra]) == 0
        return (out / "report.md").read_text(), capsys.readouterr().out

    return run


def test_a_small_run_is_not_put_beside_the_published_numbers(run_eval):
    report, stdout = run_eval(10, 3)
    assert "3 epoch(s)" in report and "test split, 2 samples" in report and "ns.h5" in report
    assert "training samples 10 (published: 1000)" in report and "## Published" not in report
    assert "no published comparison" in stdout


def test_a_forced_comparison_marks_the_published_rows_with_the_differences(run_eval):
    report, _ = run_eval(10, 3, "--setting", "fno_ns_nu1e-3_T50_N1000")
    rows = [line for line in report.splitlines() if line.startswith("| ") and "(published" in line]
    assert rows and all("(published; another protocol: training samples 10 (published: 1000))" in r for r in rows)
    assert "the published numbers come from another protocol" in report


def test_the_matching_protocol_is_compared_and_states_the_epochs(run_eval):
    report, stdout = run_eval(1000, 3)
    rows = [line for line in report.splitlines() if line.startswith("| ") and "(published" in line]
    assert rows and all("another protocol" not in r for r in rows)
    assert "this run: 1000 training samples, 3 epoch(s) (the paper trains 500 epochs)" in report
    assert "comparing with published setting fno_ns_nu1e-3_T50_N1000" in stdout


def test_a_setting_whose_protocol_is_not_known_says_so(run_eval):
    from train.evaluate import FNO_NS_PROTOCOLS
    from train.report import SETTINGS

    other = next(k for k, v in SETTINGS.items() if k not in FNO_NS_PROTOCOLS and v["layout"] == "trajectory")
    report, _ = run_eval(10, 3, "--setting", other)
    rows = [line for line in report.splitlines() if line.startswith("| ") and "(published" in line]
    assert rows and all(
        "(published; protocol not checked (this run: 10 training samples, 3 epoch(s)))" in r for r in rows
    )

"""The dataset spec has fixed sections and one schema (:mod:`datagen.spec`) that the generators, the
importers and ``validate`` share; the flat specs earlier versions wrote still read the same.

Files come from the real generators (tiny runs), the real importer, and the real generators' files
with their spec flattened back exactly as the previous version wrote it."""

import json
import shutil
import warnings

import h5py
import numpy as np
import pytest

from datagen.contract import Grid
from datagen.dataset import open_dataset, spec_rtol, validate
from datagen.spec import (
    ELLIPTIC_OPTIONS,
    NS_FAMILY,
    SCHEMA,
    SECTIONS,
    Spec,
    SpecError,
    build_spec,
    check_spec,
    section_of,
    table,
)

ELLIPTIC = ("darcy", "helmholtz", "poisson", "heat")


# ------------------------------------------------------------------------------------------------ files
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny files of every elliptic family, of a Navier-Stokes run and of the FNO Navier-Stokes importer."""
    pytest.importorskip("petsc4py")
    from datagen.cli import main

    root = tmp_path_factory.mktemp("spec_schema")
    out = {}
    for fam in ELLIPTIC:
        out[fam] = str(root / f"{fam}.h5")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert (
                main([fam, "--n", "3", "--resolution", "9", "--solver", "lu", "--out", out[fam], "--no-progress"]) == 0
            )
    out["navier-stokes"] = str(root / "ns.h5")
    assert (
        main(
            [
                "navier-stokes",
                "--recipe",
                "fno",
                "--n",
                "2",
                "--out",
                out["navier-stokes"],
                "--resolution",
                "16",
                "--store-resolution",
                "8",
                "--dt",
                "1e-2",
                "--t-end",
                "0.2",
                "--snapshot-interval",
                "0.1",
                "--batch-size",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    from scipy.io import savemat

    from train.importers import import_fno_ns

    rng = np.random.default_rng(0)
    src = root / "ns_V1e-3_N3_T5.mat"  # the FNO benchmark's layout: u (N, X, Y, T), a (N, X, Y)
    savemat(
        src,
        {
            "u": rng.standard_normal((3, 8, 8, 5)).astype(np.float32),
            "a": rng.standard_normal((3, 8, 8)).astype(np.float32),
        },
    )
    out["imported"] = import_fno_ns(str(src), str(root / "imported.h5"))
    return out


def _stored_spec(path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["spec"])


def _with_spec(src, dst, spec) -> str:
    """A copy of the file ``src`` whose spec attribute is ``spec`` (the arrays untouched)."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "a") as f:
        f.attrs["spec"] = json.dumps(spec, sort_keys=True)
    return str(dst)


@pytest.mark.parametrize("name", ELLIPTIC + ("navier-stokes", "imported"))
def test_written_specs_have_the_four_sections_and_pass_the_schema(files, name):
    spec = _stored_spec(files[name])
    assert set(spec) == {"family", "schema", *SECTIONS} and spec["schema"] == SCHEMA
    assert check_spec(spec) == [] and validate(files[name]) == []
    for section in SECTIONS:  # every key where its family's table puts it
        for key in spec[section]:
            assert section_of(spec["family"], key) == section, (section, key)
    with open_dataset(files[name]) as ds:
        s = Spec.from_stored(ds)
        assert not s.legacy and s.family == (ds.pde if name in ("navier-stokes", "imported") else name)
        if name in ELLIPTIC:
            assert s.rtol == 1e-8 and s.solver["method"] == "lu"
            assert s.grid == Grid.from_dataset(ds) and s.grid.includes_walls
        if name == "navier-stokes":
            assert s.physics["viscosity"] == 1e-3 and s.sampling["n_snapshots"] == 2
            assert s.solver["stepper"] == "fno" and s.grid == Grid.from_dataset(ds)
        if name == "imported":
            assert s.physics["forcing"] == {"type": "fno", "amplitude": 0.1, "wavenumber": 1}
            assert s.sampling["source"] == "fno_mat" and s.sampling["snapshot_interval"] == 1.0


def test_every_recipe_and_family_builds_a_spec_that_passes_the_schema():
    from datagen.elliptic.cli import FAMILIES, build_family
    from datagen.navier_stokes.generator import SEEDING, grid_record
    from datagen.navier_stokes.recipes import RECIPES, recipe

    for name in RECIPES:
        flat = {**recipe(name), "compute_dtype": "float32", "seeding": SEEDING}
        flat["grid"] = grid_record(flat)
        spec = build_spec(NS_FAMILY, flat)
        assert check_spec(spec) == [] and Spec.from_stored(spec).flat() == {"family": NS_FAMILY, **flat}
    for name in FAMILIES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fam = build_family(name, 5, {})
        spec = build_spec(fam.name, fam.spec())
        assert spec["family"] == name and check_spec(spec) == []
        assert Spec.from_stored(spec).grid == fam.grid()


# ----------------------------------------------------------------------------- what validate reports
def test_validate_names_a_key_in_the_wrong_section_an_unknown_section_and_a_bad_value(files, tmp_path):
    spec = _stored_spec(files["darcy"])
    moved = json.loads(json.dumps(spec))
    moved["physics"]["rtol"] = moved["solver"].pop("rtol")
    problems = validate(_with_spec(files["darcy"], tmp_path / "moved.h5", moved))
    assert (
        "spec: key 'rtol' is in section 'physics' but belongs in section 'solver' (family 'darcy'); "
        "move it to solver.rtol"
    ) in problems, problems

    extra = dict(spec, extras={"note": 1})
    problems = validate(_with_spec(files["darcy"], tmp_path / "extra.h5", extra))
    assert any(
        "unknown section 'extras'" in p and "physics, discretisation, solver, sampling" in p for p in problems
    ), problems

    bad = json.loads(json.dumps(spec))
    bad["solver"]["rtol"] = 2.0
    problems = validate(_with_spec(files["darcy"], tmp_path / "bad.h5", bad))
    assert any(p.startswith("spec solver.rtol: rtol must be a number in (0, 1), got 2.0") for p in problems), problems

    typo = json.loads(json.dumps(spec))
    typo["sampling"]["coeficient"] = typo["sampling"].pop("coefficient")
    problems = validate(_with_spec(files["darcy"], tmp_path / "typo.h5", typo))
    assert any("unknown key 'coeficient' (did you mean 'coefficient'?)" in p for p in problems), problems

    ns = _stored_spec(files["navier-stokes"])
    ns["physics"]["viscosity"] = -1e-3
    ns["physics"]["forcing"] = {"type": "swirl"}
    del ns["sampling"]
    problems = validate(_with_spec(files["navier-stokes"], tmp_path / "ns_bad.h5", ns))
    assert "spec physics.viscosity: viscosity must be >= 0.0, got -0.001" in problems, problems
    assert any("physics.forcing" in p and "unknown type 'swirl'" in p for p in problems), problems
    assert any("section 'sampling' is missing" in p for p in problems), problems


def test_build_spec_refuses_unknown_keys_and_bad_values_in_one_line():
    with pytest.raises(SpecError, match=r"unknown key 'viscosty' \(did you mean 'viscosity'\?\)"):
        build_spec(NS_FAMILY, {"viscosty": 1e-3})
    with pytest.raises(SpecError, match=r"physics.box: box must be > 0.0, got 0"):
        build_spec(NS_FAMILY, {"box": 0})
    with pytest.raises(SpecError, match=r"sampling.spread: helmholtz: spread must be in \[0, 1\), got 1.5"):
        build_spec("helmholtz", {"spread": 1.5})


# ------------------------------------------------------------------------------ flat specs of earlier versions
def _flatten_elliptic(spec: dict) -> dict:
    """The spec as the elliptic generator wrote it before the schema (``git show d8d0a7c:datagen/elliptic/
    generator.py``): the family's keys at the top (``discretisation`` the scheme text, ``grid`` the
    record) and the ``solver`` record."""
    flat = {"family": spec["family"]}
    for section in ("physics", "discretisation", "sampling"):
        for key, value in spec[section].items():
            flat["discretisation" if key == "scheme" else key] = value
    flat["solver"] = dict(spec["solver"])
    return flat


def _flatten_ns(spec: dict) -> dict:
    """The Navier-Stokes spec as the generator and the importers wrote it before: every key at the top."""
    return {k: v for s in SECTIONS for k, v in spec[s].items()}


@pytest.mark.parametrize("name", ELLIPTIC + ("navier-stokes", "imported"))
def test_flat_spec_of_the_previous_version_reads_back_the_same(files, name, tmp_path):
    from datagen.navier_stokes.physics import physics_from_dataset

    spec = _stored_spec(files[name])
    flat = _flatten_elliptic(spec) if name in ELLIPTIC else _flatten_ns(spec)
    assert "schema" not in flat and not any(isinstance(flat.get(s), dict) and s != "solver" for s in SECTIONS)
    legacy = _with_spec(files[name], tmp_path / "legacy.h5", flat)
    assert check_spec(flat, pde=None if name in ELLIPTIC else NS_FAMILY) == [] and validate(legacy) == []
    with open_dataset(files[name]) as new, open_dataset(legacy) as old:
        read = Spec.from_stored(old)
        assert read.legacy and read.to_stored() == spec  # upgraded in memory to the same sections
        assert Grid.from_dataset(old) == Grid.from_dataset(new)
        assert spec_rtol(old.spec, old.pde) == spec_rtol(new.spec, new.pde)
        if name not in ELLIPTIC:
            assert physics_from_dataset(old) == physics_from_dataset(new)
        for field in new.fields:  # the arrays are the file's, untouched
            np.testing.assert_array_equal(old.read(field), new.read(field))
    assert json.loads(h5py.File(legacy, "r").attrs["spec"]) == flat  # reading never rewrites the file


def test_a_run_started_by_the_previous_version_resumes(files, tmp_path):
    """A partial run whose manifest holds the flat spec of the previous version goes on (the resume
    compares settings through the accessor) and ends with the uninterrupted run's arrays."""
    from datagen.cli import main

    out = str(tmp_path / "resumed.h5")
    common = ["darcy", "--n", "3", "--resolution", "9", "--solver", "lu", "--block", "0", "--out", out, "--no-progress"]
    main(common + ["--max-new", "1"])
    manifest = out + ".partial/manifest.json"
    with open(manifest) as fh:
        m = json.load(fh)
    m["spec"] = _flatten_elliptic(m["spec"])
    with open(manifest, "w") as fh:
        json.dump(m, fh)
    assert main(common + ["--resume"]) == 0 and validate(out) == []
    with open_dataset(out) as a, open_dataset(files["darcy"]) as b:
        assert a.spec["schema"] == SCHEMA
        for field in b.fields:
            np.testing.assert_array_equal(a.read(field), b.read(field))


def test_flat_toy_specs_keep_validating_and_conflicts_are_named():
    assert check_spec({"n": 8, "rtol": 1e-6}) == []  # earlier writers' free-form keys stay
    assert Spec.from_stored({"n": 8, "rtol": 1e-6}).rtol == 1e-6
    assert check_spec({"family": "benchmark", "n": 16}) == []
    assert check_spec({"rtol": 1e-8, "solver": {"rtol": 1e-6}}) == [
        "spec (flat, earlier version) records rtol twice: 1e-08 and 1e-06"
    ]


# ----------------------------------------------------------------------------- one table for --set
def test_elliptic_options_land_where_the_schema_says():
    """Each documented family option (flag or --set) is stored at the spec path the schema names."""
    from datagen.elliptic.cli import FAMILY_OPTIONS, build_family

    values = {
        "coefficient": "piecewise",
        "alpha": 3.0,
        "tau": 5.0,
        "forcing": 2.0,
        "wavenumber": 5.0,
        "contrast": 0.2,
        "spread": 0.1,
        "bc": "neumann",
        "boundary_alpha": 2.0,
        "boundary_tau": 4.0,
        "steps": 3,
        "dt": 0.01,
        "theta": 0.5,
    }
    assert set(FAMILY_OPTIONS) == set(ELLIPTIC_OPTIONS)
    for family, options in ELLIPTIC_OPTIONS.items():
        for option, path in options.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fam = build_family(family, 9, {option: values[option]})
            spec = build_spec(fam.name, fam.spec())
            node = spec
            for part in path.split("."):
                node = node[part]
            assert node == values[option], (family, option, path)


def test_set_keys_come_from_the_schema():
    from datagen.elliptic.cli import SET_SOLVER_KEYS, parse_set
    from datagen.elliptic.generator import CONFIG_KEYS
    from datagen.navier_stokes.recipes import _BASE, SPEC_KEYS

    assert SET_SOLVER_KEYS == tuple(k for k in CONFIG_KEYS if k not in ("n_samples", "seed", "dtype"))
    assert set(SPEC_KEYS) == set(_BASE) | {
        "viscosity",
        "n_snapshots",
        "initial",
        "recipe",
        "compute_dtype",
        "seeding",
        "grid",
    }
    assert all(table(NS_FAMILY)[k].settable for k in _BASE)
    with pytest.raises(ValueError, match=r"--set for darcy: unknown key 'restrat' \(did you mean 'restart'\?\)"):
        parse_set(["restrat=30"], "darcy")

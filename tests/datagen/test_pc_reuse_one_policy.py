"""One PC-reuse policy (:class:`datagen.krylov.pc_reuse.PCReusePolicy`) decides for the data generator's
``PetscBackend`` too: its count-only mode keeps a PC for exactly ``pc_reuse`` matrices of one sparsity
pattern, the rule the backend had as a plain counter before (written out here as the reference), so that
data stored with ``--pc-reuse K`` stay the same."""

import numpy as np
import pytest

pytest.importorskip("petsc4py")

from petsc4py import PETSc  # noqa: E402

from datagen.elliptic.backends import PetscBackend  # noqa: E402
from datagen.elliptic.darcy import Darcy  # noqa: E402
from datagen.krylov.pc_reuse import PCReusePolicy  # noqa: E402


def counter_rule(events, k, reusable=True):
    """The backend's former rule: ``reuse = same pattern and systems_on_pc < k``; a reset makes the next
    matrix build (``systems_on_pc = k``), a size change starts over (``0``). One flag per matrix."""
    flags, systems, pattern = [], 0, None
    for e in events:
        if e == "reset":
            systems = k
            continue
        if e == "resize":
            systems, pattern = 0, None
            continue
        same = pattern == e
        reuse = same and systems < k and reusable
        systems = systems + 1 if reuse else 1
        pattern = e
        flags.append(reuse)
    return flags


EVENTS = ["a"] * 7 + ["reset"] + ["a"] * 4 + ["b"] * 3 + ["resize"] + ["c"] * 5


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_count_only_policy_is_the_counter_rule(k):
    policy, flags, key, pattern = PCReusePolicy(k, iteration_growth=None), [], 0, None
    for e in EVENTS:
        if e in ("reset", "resize"):
            policy.forget()
            pattern = None
            continue
        key += 1
        reuse = pattern == e and not policy.needs_rebuild(key)
        if not reuse:
            policy.built(key)
        policy.solved(10**6)  # no growth trigger in this mode, whatever the count
        pattern = e
        flags.append(reuse)
    assert flags == counter_rule(EVENTS, k)


def test_count_only_mode_and_its_errors():
    assert PCReusePolicy(3, iteration_growth=None).iteration_growth is None
    with pytest.raises(ValueError, match="or None: count only"):
        PCReusePolicy(3, iteration_growth=0.5)
    grow = PCReusePolicy(3, iteration_growth=1.5, min_baseline=1)
    grow.built(1)
    grow.solved(10)
    grow.solved(100)  # the growth mode still rebuilds early
    assert grow.needs_rebuild(2)


@pytest.mark.parametrize("method", ["gmres", "skr", "lu"])
@pytest.mark.parametrize("k", [1, 3])
def test_backend_keeps_the_pc_as_the_counter_rule_says(method, k):
    """Whether the PC is kept (no numeric factorisation in the solve) after each ``set_operator``, over
    same-pattern runs, a reset, a new pattern and a size change, is the former counter's; solves converge."""
    PETSc.Log.begin()
    factorisations = PETSc.Log.Event("MatLUFactorNum")
    fam, small = Darcy(17), Darcy(9)
    mats = {"a": [fam.operator(fam.sample(0, i)) for i in range(8)]}
    a0 = mats["a"][0].tolil()
    a0[0, 5] = 1e-3  # one more entry: another sparsity pattern
    mats["b"] = [a0.tocsr() + 0.0 * i * mats["a"][0] for i in range(3)]
    mats["c"] = [small.operator(small.sample(0, i)) for i in range(5)]
    backend = PetscBackend(method, rtol=1e-9, pc="lu" if method == "lu" else "ilu", pc_reuse=k, initial_guess="zero")
    flags, used = [], {"a": 0, "b": 0, "c": 0}
    for e in EVENTS:
        if e == "reset":
            backend.reset()
            continue
        if e == "resize":
            continue  # the next matrix has another size
        A = mats[e][used[e] % len(mats[e])]
        used[e] += 1
        backend.set_operator(A)
        b = np.ones(A.shape[0])
        before = factorisations.getPerfInfo()["count"]
        x, st = backend.solve(b)
        flags.append(factorisations.getPerfInfo()["count"] == before)
        assert st.converged and np.linalg.norm(A @ x - b) <= 1e-8 * np.linalg.norm(b)
    assert flags == counter_rule(EVENTS, k, reusable=method != "lu")
    backend.destroy()

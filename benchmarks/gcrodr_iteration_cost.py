"""Cost of one GCRO-DR(m, k) iteration against one PETSc GMRES(m) iteration, same process.

Systems: a slowly varying sequence (what sorting produces) of 2-D variable-coefficient
diffusion operators ``-div(a grad u) = 1`` on an ``N x N`` interior grid, conservative 5-point
stencil with harmonic-mean face coefficients, ``a = exp(g)`` with ``g`` moving along a smooth
path between two smooth random fields. Same PC (``-pc_type``, ILU(0) by default), same
``rtol`` on the true residual relative to ``||b||``, same zero initial guess, right
preconditioning for both.

Reported per method: total iterations, seconds (solve only; PC set-up reported apart), seconds per
iteration, and the ratio to PETSc GMRES. Each of ``--repeats`` rounds runs every method on the
same systems, interleaved system by system (the order of the methods rotates between rounds), so
the shared host's slow and fast moments fall on all methods alike; the headline iteration-cost
ratio is the median over rounds of the ratio measured inside one round, and the fastest round per
method is reported besides. GCRO-DR's recycled-space updates are counted by kind (full / low-rank
/ unchanged, see ``GCRODR.update_rank_tol``).
Both wall and CPU (process) time are recorded.

Methods: ``petsc_gmres`` (KSPGMRES(m), right PC, unpreconditioned norm), ``gcrodr``
(GCRO-DR(m, k)), ``gcrodr_k0`` (the same code with k = 0, i.e. its own GMRES(m): isolates the
Python/NumPy overhead), and with ``--pc-reuse N`` ``gcrodr_pc_reuse`` (each PC kept for up to N
systems). ``--shift`` turns the operator into an indefinite Helmholtz-type one.

    OMP_NUM_THREADS=1 python benchmarks/gcrodr_iteration_cost.py --n 256 --systems 6
    OMP_NUM_THREADS=1 python benchmarks/gcrodr_iteration_cost.py --n 256 --systems 4 \
        --shift 158 --amplitude 0.3 --max-it 5000 --step 0.02        # indefinite, GMRES stalls
    OMP_NUM_THREADS=1 python benchmarks/gcrodr_iteration_cost.py --pc-type gamg --pc-reuse 4

Before/after a change: export the older commit (``git archive <commit> | tar -x -C /tmp/old``) and
run this script with ``PYTHONPATH=/tmp/old`` and then with the working tree, ``--label`` saying
which (records in benchmarks/results/gcrodr_iteration_cost_*.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import conditions  # benchmarks/conditions.py: records the load at the start
import numpy as np
import scipy.sparse as sp


def smooth_field(n: int, rng: np.random.Generator, decay: float = 2.5, scale: float = 1.0):
    """Smooth random field on an n x n grid: white noise filtered by (1 + |k|^2)^(-decay/2)."""
    noise = rng.standard_normal((n, n))
    kx = np.fft.fftfreq(n) * n
    k2 = kx[:, None] ** 2 + kx[None, :] ** 2
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * (1.0 + k2) ** (-decay / 2)))
    return scale * field / field.std()


def diffusion_matrix(coef: np.ndarray, shift: float = 0.0) -> sp.csr_matrix:
    """-div(coef grad u) - shift u, 5-point conservative stencil, zero Dirichlet, h = 1/(n+1)."""
    n = coef.shape[0]
    h = 1.0 / (n + 1)
    idx = np.arange(n * n).reshape(n, n)
    rows, cols, vals = [], [], []
    diag = np.zeros((n, n))
    for axis in (0, 1):
        face = (
            2.0 * coef[:-1] * coef[1:] / (coef[:-1] + coef[1:])
            if axis == 0
            else 2.0 * coef[:, :-1] * coef[:, 1:] / (coef[:, :-1] + coef[:, 1:])
        )
        lo = idx[:-1] if axis == 0 else idx[:, :-1]
        hi = idx[1:] if axis == 0 else idx[:, 1:]
        rows += [lo.ravel(), hi.ravel()]
        cols += [hi.ravel(), lo.ravel()]
        vals += [-face.ravel(), -face.ravel()]
        after = [(0, 1), (0, 0)] if axis == 0 else [(0, 0), (0, 1)]
        before = [(1, 0), (0, 0)] if axis == 0 else [(0, 0), (1, 0)]
        diag += np.pad(face, after) + np.pad(face, before)
        # boundary faces: the neighbour is a Dirichlet node, face coefficient = coef itself
        edge = np.zeros((n, n))
        if axis == 0:
            edge[0] += coef[0]
            edge[-1] += coef[-1]
        else:
            edge[:, 0] += coef[:, 0]
            edge[:, -1] += coef[:, -1]
        diag += edge
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag.ravel() - shift * h * h)
    matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n))
    return matrix / (h * h)


def darcy_sequence(n: int, count: int, seed: int, step: float, shift: float = 0.0, amplitude: float = 1.0):
    rng = np.random.default_rng(seed)
    g1, g2 = smooth_field(n, rng), smooth_field(n, rng)
    for i in range(count):
        angle = step * i
        coef = np.exp(amplitude * (np.cos(angle) * g1 + np.sin(angle) * g2))
        yield diffusion_matrix(coef, shift)


def to_petsc(matrix):
    from petsc4py import PETSc

    matrix = matrix.tocsr()
    csr = (matrix.indptr, matrix.indices, matrix.data)
    return PETSc.Mat().createAIJ(size=matrix.shape, csr=csr, comm=PETSc.COMM_SELF)


def _fresh_system(A):
    b = A.createVecLeft()
    b.set(1.0)
    x = A.createVecRight()
    x.set(0.0)
    return b, x


def _empty_totals():
    return dict(iterations=0, wall=0.0, cpu=0.0, setup=0.0, max_residual=0.0, all_converged=True, pc_builds=0)


class PetscGMRES:
    """KSPGMRES(m), right PC, unpreconditioned norm: one system at a time (``step``)."""

    def __init__(self, restart, rtol, max_it, pc_type):
        from petsc4py import PETSc

        self.ksp = PETSc.KSP().create(PETSc.COMM_SELF)
        self.ksp.setType("gmres")
        self.ksp.setGMRESRestart(restart)
        self.ksp.setPCSide(PETSc.PC.Side.RIGHT)
        self.ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        self.ksp.setTolerances(rtol=rtol, atol=0.0, max_it=max_it)
        self.ksp.getPC().setType(pc_type)
        self.out = _empty_totals()

    def step(self, A):
        out, ksp = self.out, self.ksp
        b, x = _fresh_system(A)
        ksp.setOperators(A)
        t0 = time.perf_counter()
        ksp.setUp()
        out["setup"] += time.perf_counter() - t0
        out["pc_builds"] += 1
        w0, c0 = time.perf_counter(), time.process_time()
        ksp.solve(b, x)
        out["wall"] += time.perf_counter() - w0
        out["cpu"] += time.process_time() - c0
        out["iterations"] += ksp.getIterationNumber()
        r = b.duplicate()
        A.mult(x, r)
        r.aypx(-1.0, b)
        out["max_residual"] = max(out["max_residual"], r.norm() / b.norm())
        out["all_converged"] &= ksp.getConvergedReason() > 0

    def finish(self):
        self.ksp.destroy()
        return self.out


class OwnGCRODR:
    """This project's GCRO-DR(m, k) (``k = 0``: its own GMRES(m)), state kept across ``step``s."""

    def __init__(self, restart, recycle, rtol, max_it, pc_type, pc_reuse=1, **kwargs):
        from petsc4py import PETSc

        from datagen.krylov import GCRODR

        prefix = f"itcost{restart}_{recycle}_"
        PETSc.Options()[prefix + "pc_type"] = pc_type
        self.solver = GCRODR(
            restart=restart, recycle=recycle, rtol=rtol, max_it=max_it, options_prefix=prefix, **kwargs
        )
        if pc_reuse > 1:
            self.solver.set_pc_reuse(max_systems=pc_reuse, iteration_growth=1.5)
        self.out = _empty_totals()

    def step(self, A):
        out, solver = self.out, self.solver
        b, x = _fresh_system(A)
        before = solver.timers["pc_setup"]
        w0, c0 = time.perf_counter(), time.process_time()
        res = solver.solve(A, b, x)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        setup = solver.timers["pc_setup"] - before
        out["setup"] += setup
        out["wall"] += wall - setup
        out["cpu"] += cpu - setup
        out["iterations"] += res.iterations
        out["max_residual"] = max(out["max_residual"], res.residual)
        out["all_converged"] &= res.converged
        out["pc_builds"] += res.pc_rebuilt

    def finish(self):
        out = self.out
        out["phases"] = {k: round(v, 4) for k, v in self.solver.timers.items()}
        out["update_stats"] = dict(self.solver.update_stats)
        self.solver.destroy()
        return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="grid points per side (n^2 unknowns)")
    parser.add_argument("--systems", type=int, default=6)
    parser.add_argument("--step", type=float, default=0.05, help="path step between neighbours")
    parser.add_argument("--restart", type=int, default=40)
    parser.add_argument("--recycle", type=int, default=20)
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--max-it", type=int, default=10000)
    parser.add_argument("--pc-type", default="ilu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shift", type=float, default=0.0, help="subtract shift*u (e.g. 160 = (2 pi 2)^2: two wavelengths, indefinite)"
    )
    parser.add_argument("--amplitude", type=float, default=1.0, help="a = exp(amplitude * g)")
    parser.add_argument(
        "--update-interval", type=int, default=1, help="GCRO-DR recycled-space update every this many cycles"
    )
    parser.add_argument(
        "--update-rank-tol",
        type=float,
        default=0.1,
        help="GCRO-DR low-rank recycled-space update threshold (0: full update every time, as Parks et al.)",
    )
    parser.add_argument("--reorthogonalize", default="never", choices=["never", "ifneeded", "always"])
    parser.add_argument(
        "--pc-reuse", type=int, default=0, help="also run GCRO-DR keeping each PC for up to this many systems"
    )
    parser.add_argument("--json", default="data/bench/gcrodr_iteration_cost.json")
    parser.add_argument(
        "--label", default="", help="stored in the record: which code ran (e.g. 'before: commit 9114cea')"
    )
    args = parser.parse_args(argv)
    if args.n < 4 or args.systems < 1 or args.repeats < 1:
        parser.error("--n >= 4, --systems >= 1 and --repeats >= 1 are required")
    import petsc4py

    petsc4py.init(sys.argv[:1])
    mats = [to_petsc(m) for m in darcy_sequence(args.n, args.systems, args.seed, args.step, args.shift, args.amplitude)]
    gcrodr_kwargs = dict(
        update_interval=args.update_interval, reorthogonalize=args.reorthogonalize, update_rank_tol=args.update_rank_tol
    )
    methods = {
        "petsc_gmres": lambda: PetscGMRES(args.restart, args.rtol, args.max_it, args.pc_type),
        "gcrodr": lambda: OwnGCRODR(args.restart, args.recycle, args.rtol, args.max_it, args.pc_type, **gcrodr_kwargs),
        "gcrodr_k0": lambda: OwnGCRODR(args.restart, 0, args.rtol, args.max_it, args.pc_type),
    }
    if args.pc_reuse > 1:
        methods["gcrodr_pc_reuse"] = lambda: OwnGCRODR(
            args.restart, args.recycle, args.rtol, args.max_it, args.pc_type, pc_reuse=args.pc_reuse, **gcrodr_kwargs
        )
    # Interleaved per system (the order rotates every round), so that the host's slow and fast
    # moments fall on every method alike; each method keeps its own state across the systems.
    names = list(methods)
    rounds: list[dict[str, dict]] = []
    for round_index in range(args.repeats):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        runners = {name: methods[name]() for name in order}
        for A in mats:
            for name in order:
                runners[name].step(A)
        rounds.append({name: runners[name].finish() for name in names})
    best: dict[str, dict] = {}
    for result_round in rounds:
        for name, result in result_round.items():
            if name not in best or result["cpu"] < best[name]["cpu"]:
                best[name] = result
    # the per-iteration cost ratio of each round (both methods measured side by side)
    round_ratios = {
        name: [
            (r[name]["cpu"] / max(r[name]["iterations"], 1))
            / (r["petsc_gmres"]["cpu"] / max(r["petsc_gmres"]["iterations"], 1))
            for r in rounds
        ]
        for name in names
    }
    base = best["petsc_gmres"]
    per_it_base = {t: base[t] / max(base["iterations"], 1) for t in ("wall", "cpu")}
    print(
        f"n = {args.n}^2 = {args.n**2} unknowns, {args.systems} systems, pc {args.pc_type}, "
        f"rtol {args.rtol}, m = {args.restart}, k = {args.recycle}; best of {args.repeats}"
    )
    print(
        f"{'method':<16} {'its':>6} {'cpu s':>8} {'ms/it cpu':>10} {'ratio':>6} "
        f"{'ms/it wall':>11} {'ratio':>6} {'time/GMRES':>10} {'max res':>9}"
    )
    for name, r in best.items():
        its = max(r["iterations"], 1)
        r["ms_per_iteration_cpu"] = 1e3 * r["cpu"] / its
        r["ms_per_iteration_wall"] = 1e3 * r["wall"] / its
        r["iteration_cost_ratio_cpu"] = r["cpu"] / its / per_it_base["cpu"]
        r["iteration_cost_ratio_wall"] = r["wall"] / its / per_it_base["wall"]
        r["solve_time_ratio_cpu"] = r["cpu"] / base["cpu"]
        print(
            f"{name:<16} {r['iterations']:>6} {r['cpu']:>8.3f} {r['ms_per_iteration_cpu']:>10.3f} "
            f"{r['iteration_cost_ratio_cpu']:>6.2f} {r['ms_per_iteration_wall']:>11.3f} "
            f"{r['iteration_cost_ratio_wall']:>6.2f} {r['solve_time_ratio_cpu']:>10.2f} "
            f"{r['max_residual']:>9.2e}"
        )
    print("gcrodr phases (wall s, pc_setup CPU s; best round):", best["gcrodr"].get("phases"))
    print("gcrodr recycled-space updates:", best["gcrodr"].get("update_stats"))
    print("iteration cost vs PETSc GMRES, CPU, per round (interleaved per system):")
    for name in names[1:]:
        values = np.array(round_ratios[name])
        best[name]["iteration_cost_ratio_rounds"] = values.tolist()
        best[name]["iteration_cost_ratio_median"] = float(np.median(values))
        print(
            f"  {name:<16} median {np.median(values):.2f}  min {values.min():.2f}  "
            f"max {values.max():.2f}  rounds {np.round(values, 2).tolist()}"
        )
    print(f"{'method':<16} {'pc builds':>9} {'setup s':>8} {'solve+setup s (wall)':>21} {'vs GMRES':>9}")
    base_total = base["wall"] + base["setup"]
    for name, r in best.items():
        total = r["wall"] + r["setup"]
        r["total_with_setup_wall"] = total
        print(
            f"{name:<16} {r.get('pc_builds', args.systems):>9} {r['setup']:>8.3f} {total:>21.3f} "
            f"{total / base_total:>9.2f}"
        )
    record = dict(
        benchmark="gcrodr_iteration_cost",
        args=vars(args),
        label=args.label,
        results=json.loads(json.dumps(best, default=float)),
    )
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

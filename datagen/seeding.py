"""The one per-sample seeding rule shared by every generator.

Sample ``i`` of a dataset generated with seed ``s`` draws all its randomness from
``sample_rng(s, i)``, a NumPy generator seeded by ``SeedSequence([s, i])``. Sample ``i`` is therefore
the same whether the run makes 10 or 10^5 samples, in one process or many, in batches of any size,
on any device (draws happen on the host in float64; devices only receive the drawn arrays).
"""

from __future__ import annotations

import numpy as np


def _check(seed: int, index: int) -> None:
    for name, v in (("seed", seed), ("index", index)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")


def sample_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Generator for sample ``index`` of a run with ``seed``.

    ``stream`` separates independent draws of one sample (e.g. 0 for the coefficient field, 1 for the
    source term) so that adding a new random input does not change the existing ones.
    """
    _check(seed, index)
    if stream == 0:
        return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream)]))

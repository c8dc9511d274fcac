"""Console entry points of the training side: the allocator setting (:func:`datagen.allocator.ensure`,
a one-time re-exec with the malloc variables set) comes first, before torch and Lightning are imported;
then the program runs. ``python -m train.cli`` / ``-m train.evaluate`` / ``-m train.data_cli`` do the same."""

from __future__ import annotations

from datagen.allocator import ensure


def train() -> int:
    """``neuralops-train``"""
    ensure()
    from train.cli import main

    return main()


def evaluate() -> int:
    """``neuralops-eval``"""
    ensure()
    from train.evaluate import main

    return main()


def data() -> int:
    """``neuralops-data``"""
    ensure()
    from train.data_cli import main

    return main()

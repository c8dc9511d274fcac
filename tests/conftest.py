"""Shared fixtures of the test suite: tests/datagen, tests/neuralops and tests/train hold each
package's tests, benchmark smoke tests and the layering check sit here. The repository root is on
sys.path through pytest's `pythonpath` setting (pyproject.toml)."""

import os

import pytest

# keep tests deterministic and light on a 2-core machine
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

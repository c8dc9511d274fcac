"""train: Lightning data modules, the training module, CLI, evaluation and spectral refinement."""

__version__ = "0.1.0"

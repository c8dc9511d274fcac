"""Neural-operator models, each registered by name.

Import order matters only in that every model module must be imported here so that its
``@register`` decorator runs.
"""
# Model modules register themselves on import.
import importlib as _importlib

from .registry import available, constructor, get, register  # noqa: F401

for _mod in ("fno", "sfno", "mgno", "sinenet", "unet"):
    try:
        _importlib.import_module(f"{__name__}.{_mod}")
    except ModuleNotFoundError as _err:  # a model file not written yet
        if _err.name != f"{__name__}.{_mod}":
            raise

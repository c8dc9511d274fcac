"""The constructor contract every registered model follows (:class:`ModelContract`).

A model declares the data layouts it serves (:attr:`ModelContract.kinds`) and is built from the
same arguments whatever it is, by :meth:`ModelContract.build`:

* ``steady`` -- a field map ``(B, in_channels, X, Y) -> (B, out_channels, X, Y)`` (Darcy ``a -> u``).
  A field map also steps an autoregressive rollout: its history frames are stacked as channels,
  ``in_channels = t_in * C``, ``out_channels = t_out * C``.
* ``autoregressive`` -- next frames from a history: ``in_channels`` = ``out_channels`` = ``C`` fields
  per frame, ``t_in`` history frames, ``t_out`` frames per step; called on ``(B, t_in * C, X, Y)``.
* ``direct`` -- a whole trajectory in one pass: ``(B, t_in, X, Y) -> (B, t_out, X, Y)`` of one field
  (``in_channels = out_channels = 1``).

The data's geometry reaches the models that adapt to it (:attr:`ModelContract.geometry`):
``padding_mode`` (the boundary condition: circular, zeros, reflect) and ``endpoint`` (the grid stores
both walls). Each class maps the contract's arguments to its own constructor's names
(:meth:`ModelContract.contract_arguments`), so the published constructors -- and the parameter counts
the tests pin -- stay as they are.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple

__all__ = ["STEADY", "DIRECT", "AUTOREGRESSIVE", "KINDS", "ModelContract"]

STEADY, DIRECT, AUTOREGRESSIVE = "steady", "direct", "autoregressive"
KINDS = (STEADY, DIRECT, AUTOREGRESSIVE)
GEOMETRY = ("padding_mode", "endpoint")


class ModelContract:
    """Mixin of every registered model: what it serves and how it is built from the data."""

    #: the data layouts the model serves (a subset of :data:`KINDS`)
    kinds: ClassVar[Tuple[str, ...]] = (STEADY, AUTOREGRESSIVE)
    #: the geometry arguments its constructor takes (a subset of ``padding_mode``, ``endpoint``)
    geometry: ClassVar[Tuple[str, ...]] = ()

    @classmethod
    def contract_arguments(
        cls, kind: str, in_channels: int, out_channels: int, t_in: Optional[int], t_out: Optional[int]
    ) -> Dict[str, Any]:
        """The constructor's own arguments for the contract's (default: a field map)."""
        if kind == AUTOREGRESSIVE:
            return {"in_channels": int(t_in) * int(in_channels), "out_channels": int(t_out) * int(out_channels)}
        return {"in_channels": int(in_channels), "out_channels": int(out_channels)}

    @classmethod
    def config_keys(cls) -> Tuple[str, ...]:
        """Every keyword the constructor takes (for messages about a bad configuration)."""
        return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")

    @classmethod
    def check_kind(cls, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"model kind {kind!r} is not known; use one of {', '.join(KINDS)}")
        if kind not in cls.kinds:
            raise ValueError(f"{cls.__name__} serves {' and '.join(cls.kinds)} data, not {kind!r}")

    @classmethod
    def build(
        cls,
        kind: str,
        *,
        in_channels: int,
        out_channels: int,
        t_in: Optional[int] = None,
        t_out: Optional[int] = None,
        padding_mode: Optional[str] = None,
        endpoint: bool = False,
        config: Optional[Mapping[str, Any]] = None,
    ):
        """The model for data of layout ``kind`` (module docstring); ``config`` (the model's own
        keywords) wins over what the data determine. ``endpoint`` is passed only when true (the
        models keep their own default otherwise)."""
        cls.check_kind(kind)
        if kind != STEADY and (t_in is None or t_out is None):
            raise ValueError(f"{kind} models need t_in and t_out, got t_in={t_in}, t_out={t_out}")
        args = cls.contract_arguments(kind, in_channels, out_channels, t_in, t_out)
        if padding_mode is not None and "padding_mode" in cls.geometry:
            args["padding_mode"] = padding_mode
        if endpoint and "endpoint" in cls.geometry:
            args["endpoint"] = True
        args.update(config or {})
        return cls(**args)


def single_field(name: str, in_channels: int, out_channels: int) -> None:
    """Direct trajectory models take one field: refuse other channel counts with the fix."""
    if int(in_channels) != 1 or int(out_channels) != 1:
        raise ValueError(
            f"{name} predicts one scalar field (in_channels = out_channels = 1), got {in_channels} -> "
            f"{out_channels}; train one model per field or use an autoregressive model"
        )

"""Checking a spec's keys against the documented ones (shared by every generator).

A misspelled key must never be stored and ignored (``--set viscosty=1e-4`` would silently generate
at the default viscosity): :func:`check_keys` raises a one-line ``ValueError`` that names every
unknown key, suggests the closest allowed key (:func:`difflib.get_close_matches`) and lists the
allowed ones::

    check_keys({"viscosty": 1e-4}, ("viscosity", "resolution"), "navier-stokes spec")
    # ValueError: navier-stokes spec: unknown key 'viscosty' (did you mean 'viscosity'?);
    #             allowed: resolution, viscosity
"""

from __future__ import annotations

import difflib
from typing import Iterable, Mapping, Optional, Union

__all__ = ["check_keys", "close_match", "unknown_key_message"]


def close_match(name: str, allowed: Iterable[str]) -> Optional[str]:
    """The allowed key closest to ``name`` (difflib ratio >= 0.6, case-insensitive), or None."""
    allowed = [str(a) for a in allowed]
    lower = {a.lower(): a for a in allowed}
    hits = difflib.get_close_matches(str(name).lower(), list(lower), n=1, cutoff=0.6)
    return lower[hits[0]] if hits else None


def unknown_key_message(unknown: Iterable[str], allowed: Iterable[str], where: str) -> str:
    """``"<where>: unknown key 'x' (did you mean 'y'?); allowed: a, b, c"`` (one line)."""
    allowed = sorted(str(a) for a in allowed)
    parts = []
    for name in unknown:
        hint = close_match(name, allowed)
        parts.append(f"{name!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
    noun = "key" if len(parts) == 1 else "keys"
    return f"{where}: unknown {noun} {', '.join(parts)}; allowed: {', '.join(allowed) or '(none)'}"


def check_keys(given: Union[Mapping, Iterable[str]], allowed: Iterable[str], where: str) -> None:
    """Raise ``ValueError`` if ``given`` (a mapping's keys, or names) has a key not in ``allowed``.

    Args:
        given: the spec (its keys are checked) or an iterable of key names.
        allowed: the documented keys.
        where: what is being checked, for the message ("darcy family", "navier-stokes spec",
            "--set"); the message starts with it.
    """
    allowed = [str(a) for a in allowed]
    allowed_set = set(allowed)
    names = list(given.keys()) if isinstance(given, Mapping) else list(given)
    unknown = [str(k) for k in names if str(k) not in allowed_set]
    if unknown:
        raise ValueError(unknown_key_message(unknown, allowed, where))

"""Step registry: a step named "a.b" lives in module `edgebuild.steps.a`, which exposes `STEPS`.

Third parties add step kinds through the entry-point group `edgebuild.steps` (name = step name,
value = "module:Class"). Step modules import only the standard library at top level, so looking a
step up is cheap and never pulls in a heavy framework.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from edgebuild.steps.base import Deferred, Step, StepContext, StepFailed

__all__ = ["Deferred", "Step", "StepContext", "StepFailed", "get_step", "UnknownStep"]


class UnknownStep(LookupError):
    pass


@lru_cache(maxsize=None)
def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group="edgebuild.steps")}


@lru_cache(maxsize=None)
def get_step(name: str) -> type[Step]:
    prefix, _, _ = name.partition(".")
    try:
        module = importlib.import_module(f"edgebuild.steps.{prefix}")
    except ModuleNotFoundError as exc:
        if exc.name != f"edgebuild.steps.{prefix}":
            raise
        module = None
    if module is not None and name in getattr(module, "STEPS", {}):
        return module.STEPS[name]
    target = _entry_points().get(name)
    if target:
        mod_name, _, attr = target.partition(":")
        return getattr(importlib.import_module(mod_name), attr)
    raise UnknownStep(name)

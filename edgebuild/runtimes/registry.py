"""Which runtimes exist: the built-ins, registered here directly (no package metadata needed, so a
source checkout and the worker's toolchain environments see them), and third parties through the
entry-point group `edgebuild.runtimes` (name = runtime name, value = "module:Class")."""

from __future__ import annotations

import importlib
from functools import lru_cache

from edgebuild.runtimes.interface import RuntimeInterface

ENTRY_POINT_GROUP = "edgebuild.runtimes"
BUILTIN = {
    "onnxruntime": "edgebuild.runtimes.onnxruntime:OnnxRuntime",
    "tflite": "edgebuild.runtimes.tflite:TfliteRuntime",
    "coreml": "edgebuild.runtimes.coreml:CoremlRuntime",
    "llama.cpp": "edgebuild.runtimes.llama_cpp:LlamaCppRuntime",
    "tensorrt": "edgebuild.runtimes.tensorrt:TensorrtRuntime",
}


class UnknownRuntime(LookupError):
    pass


def _load(target: str) -> RuntimeInterface:
    module, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    return obj() if isinstance(obj, type) else obj


@lru_cache(maxsize=None)
def builtin_runtimes() -> dict[str, RuntimeInterface]:
    """The runtimes edgebuild ships, by name (no entry points read)."""
    return {name: _load(target) for name, target in BUILTIN.items()}


@lru_cache(maxsize=None)
def runtimes() -> dict[str, RuntimeInterface]:
    """Every known runtime by name: the built-ins, then installed third parties (a built-in name
    cannot be taken over by a plugin)."""
    from importlib.metadata import entry_points

    found = dict(builtin_runtimes())
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in found:
            found[ep.name] = _load(ep.value)
    return found


def get_runtime(name: str) -> RuntimeInterface:
    """The runtime of that name; entry points are read only for a name that is not built in (reading
    them costs tens of milliseconds, and a no-op build parses every recipe)."""
    found = builtin_runtimes().get(name) or runtimes().get(name)
    if found is None:
        raise UnknownRuntime(f"unknown runtime {name!r} (known: {', '.join(runtimes())})")
    return found


def coverage_routes(known: dict[str, RuntimeInterface] | None = None) -> dict[str, str]:
    """Coverage route -> module of its rules, over all runtimes (or the given ones)."""
    return {
        route: module
        for runtime in (known or runtimes()).values()
        for route, module in runtime.coverage_routes.items()
    }


def coverage_rules(route: str) -> str | None:
    """The module holding a coverage route's rules, or None for an unknown route."""
    return coverage_routes(builtin_runtimes()).get(route) or coverage_routes().get(route)

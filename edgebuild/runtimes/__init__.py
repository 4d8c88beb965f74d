"""Runtime plugins: one RuntimeInterface object per on-device runtime (see interface.py)."""

from edgebuild.runtimes.interface import ManifestMetadata, RuntimeInterface, StepRecord
from edgebuild.runtimes.registry import (
    UnknownRuntime,
    builtin_runtimes,
    coverage_routes,
    coverage_rules,
    get_runtime,
    runtimes,
)

__all__ = [
    "ManifestMetadata",
    "RuntimeInterface",
    "StepRecord",
    "UnknownRuntime",
    "builtin_runtimes",
    "coverage_routes",
    "coverage_rules",
    "get_runtime",
    "runtimes",
]

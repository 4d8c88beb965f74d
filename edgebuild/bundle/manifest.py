"""The manifest: what a bundle holds and promises, serialised canonically so the same inputs
always give the same bytes (and so the same signature and archive hash)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgebuild.bundle.errors import BundleError
from edgebuild.bundle.spec import BundleSpec

SCHEMA_VERSION = 1
SELFTEST_NAME = "selftest/selftest.npz"
LOADER_NAME = "loader.py"


def build_manifest(spec: BundleSpec, files: dict[str, tuple[str, int]], signer: str) -> dict:
    """files: every path in the bundle except manifest.json/manifest.sig -> (sha256, size)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "project": spec.project,
        "target": spec.target,
        "version": spec.version,
        "device": spec.device,
        "recipe": spec.recipe,
        "runtime": spec.runtime,
        "runtime_options": spec.runtime_options,
        "status": spec.status,
        "remaining": spec.remaining,
        "artifacts": sorted(spec.artifacts),
        "extra_files": sorted(spec.extra_files),
        "loader": LOADER_NAME,
        "selftest": SELFTEST_NAME if spec.selftest is not None else None,
        "files": {name: {"sha256": sha, "size": size} for name, (sha, size) in sorted(files.items())},
        "io": spec.io,
        "coverage": summarise_coverage(spec.coverage),
        "metrics": spec.metrics,
        "provenance": spec.provenance,
        "signing": {"algorithm": "ed25519", "key_id": signer},
        "requirements": loader_requirements(spec),
    }


def loader_requirements(spec: BundleSpec) -> dict:
    """The device's requirements for the loader; at least the Python every loader is written for."""
    from edgebuild.device_platform import LOADER_MIN_PYTHON

    return dict(spec.requirements) or {"python": f">={LOADER_MIN_PYTHON}"}


def summarise_coverage(coverage: dict | None) -> dict | None:
    """Keep the coverage report's summary numbers and unsupported ops; a per-node listing of a
    large graph would bloat every manifest without helping a device."""
    if coverage is None:
        return None
    if not isinstance(coverage, dict):
        raise BundleError("bundle coverage must be a table (dict), got %s" % type(coverage).__name__)
    dropped = {"nodes", "per_node", "details"}
    return {key: value for key, value in coverage.items() if key not in dropped}


def manifest_bytes(manifest: dict) -> bytes:
    """Canonical JSON: sorted keys, fixed indentation, ASCII only, trailing newline."""
    try:
        text = json.dumps(
            manifest, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False, default=_json_value
        )
    except ValueError as exc:
        raise BundleError(
            f"bundle manifest cannot hold a value: {exc} (NaN/Infinity metrics are not JSON)"
        ) from None
    return text.encode("ascii") + b"\n"


def _json_value(value: Any) -> Any:
    # Metadata from steps often carries Paths and numpy scalars/arrays; store their plain values.
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise BundleError(f"bundle manifest cannot store a {type(value).__name__} value ({value!r:.60})")

"""bundles/deployment.json (+ .yaml for people, + .sig): what a fleet tool needs to roll a release out.

Per target: the bundle's URI (file name next to this manifest), sha256 and size, version and
release counter, the previous version, device class and accelerator, runtime requirements, the
minimum memory a device needs (measured peak memory of verification plus 25%, rounded up to a
power-of-two tier), the deltas
available and from which versions, rollout phases with their thresholds, the rollback policy and
an expiry (against freeze attacks: a device or fleet tool refuses a stale deployment manifest).
Signed like index.json: Ed25519 over the exact bytes of deployment.json.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgebuild.bundle.archive import read_signed_head
from edgebuild.bundle.index import _atomic_write, index_expires
from edgebuild.bundle.keys import key_id
from edgebuild.bundle.portable import parse_semver, sha256_stream
from edgebuild.fleet.delta import DELTA_SUFFIX

DEPLOYMENT_NAME = "deployment.json"
DEFAULT_EXPIRY_DAYS = 90
MEMORY_MARGIN = 1.25  # measured peak memory on the build host is a floor, not a budget
MIN_MEMORY_TIER_MB = 64
# Staged rollout: a canary share first, then wider, each phase soaking before the next.
ROLLOUT_PHASES = [
    {"percent": 5, "soak_hours": 24},
    {"percent": 25, "soak_hours": 24},
    {"percent": 100, "soak_hours": 0},
]
ROLLBACK_POLICY = {
    "auto_rollback_on_error": True,
    "max_error_rate": 0.02,
    "max_p95_latency_ratio": 1.5,
    "min_agreement": 0.98,
    "min_predictions": 200,
}
ACCELERATORS = {
    "edgetpu": "edgetpu",
    "tensorrt": "gpu",
    "coreml": "neural-engine",
    "gguf": "cpu",
    "onnxruntime": "cpu",
    "tflite": "cpu",
}


def write_deployment(
    bundles_dir: Path,
    project: str,
    bundles: dict[str, Path],
    peak_memory_mb: dict[str, float],
    key: Ed25519PrivateKey,
    expiry_days: int = DEFAULT_EXPIRY_DAYS,
) -> Path:
    """bundles: target -> the bundle of this release. Writes deployment.json, .json.sig and .yaml."""
    bundles_dir = Path(bundles_dir)
    now = int(time.time())
    targets = {}
    for target, path in sorted(bundles.items()):
        head = read_signed_head(path)
        if head is None:
            continue
        manifest = json.loads(head[0])
        with open(path, "rb") as handle:
            sha256, size = sha256_stream(handle)
        versions = _released_versions(bundles_dir, project, target)
        version = manifest["version"]
        earlier = [v for v in versions if parse_semver(v) < parse_semver(version)]
        peak = peak_memory_mb.get(target)
        targets[target] = {
            "bundle": path.name,
            "sha256": sha256,
            "size": size,
            "version": version,
            # TUF-style counter: this version's place among the target's releases kept in bundles/
            "release_counter": len(earlier) + 1,
            "previous_version": earlier[-1] if earlier else None,
            "status": manifest.get("status"),
            "device": manifest.get("device"),
            "accelerator": ACCELERATORS.get(manifest.get("recipe"), "cpu"),
            "runtime": manifest["runtime"],
            "requirements": manifest.get("requirements"),
            "min_memory_mb": memory_tier(peak) if peak else None,
            "deltas": _deltas(bundles_dir, project, target, version),
            "rollout": {"phases": ROLLOUT_PHASES, "device_selection": "stable hash of the device id"},
            "rollback": ROLLBACK_POLICY,
        }
    signing = {"algorithm": "ed25519", "key_id": key_id(key.public_key())}
    path = bundles_dir / DEPLOYMENT_NAME
    if _unchanged(path, targets, signing, expiry_days):
        return path  # a no-op build rewrites nothing
    # day granularity, as index.json: two builds of one day write the same bytes
    doc = {
        "schema_version": 1,
        "project": project,
        "expires": index_expires(expiry_days, now),
        "signing": signing,
        "targets": targets,
    }
    data = json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True).encode("ascii") + b"\n"
    _atomic_write(bundles_dir / (DEPLOYMENT_NAME + ".sig"), key.sign(data))
    _atomic_write(path, data)
    _atomic_write(bundles_dir / "deployment.yaml", to_yaml(doc).encode("utf-8"))
    return path


def memory_tier(peak_mb: float) -> int:
    """The power-of-two memory tier (MB) that holds the measured peak plus the margin. Devices come
    in such tiers, and the coarse step keeps run-to-run noise in the peak out of the (signed,
    reproducible) manifest."""
    need = max(peak_mb * MEMORY_MARGIN, MIN_MEMORY_TIER_MB)
    return 1 << math.ceil(math.log2(need))


def _unchanged(path: Path, targets: dict, signing: dict, expiry_days: int) -> bool:
    """The same targets and signer, with more than half of the expiry still ahead."""
    from edgebuild.bundling import signed_file_needs_refresh

    if signed_file_needs_refresh(path, expiry_days):
        return False
    old = json.loads(path.read_text())
    return old.get("targets") == json.loads(json.dumps(targets)) and old.get("signing") == signing


def _released_versions(bundles_dir: Path, project: str, target: str) -> list[str]:
    prefix = f"{project}-{target}-"
    versions = [p.name[len(prefix) : -len(".tar.gz")] for p in bundles_dir.glob(f"{prefix}*.tar.gz")]
    return sorted((v for v in versions if parse_semver(v)), key=parse_semver)


def _deltas(bundles_dir: Path, project: str, target: str, version: str) -> list[dict]:
    out = []
    suffix = f"-to-{version}{DELTA_SUFFIX}"
    for path in sorted(bundles_dir.glob(f"{project}-{target}-*{suffix}")):
        base = path.name[len(f"{project}-{target}-") : -len(suffix)]
        if parse_semver(base) is None:
            continue
        with open(path, "rb") as handle:
            sha256, size = sha256_stream(handle)
        out.append({"from": base, "file": path.name, "sha256": sha256, "size": size})
    return out


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML of JSON data (strings double-quoted, which YAML reads as JSON strings)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}\n"
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{json.dumps(str(key))}:\n{to_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{json.dumps(str(key))}: {to_yaml(item, 0)}")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]\n"
        lines = []
        for item in value:
            text = to_yaml(item, indent + 1)
            lines.append(
                f"{pad}- {text.lstrip()}" if isinstance(item, (dict, list)) and item else f"{pad}- {text}"
            )
        return "".join(lines)
    return json.dumps(value) + "\n"

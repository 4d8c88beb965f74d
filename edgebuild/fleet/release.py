"""After `edgebuild all` bundled a release: deltas from the versions in the field (--delta-from) and
the signed deployment manifest of every target's bundle."""

from __future__ import annotations

import sys

from edgebuild.errors import BuildFailed, ConfigError
from edgebuild.fsutil import relative_to_root
from edgebuild.project import SEMVER, Project


def publish_release(
    project: Project, results: dict, delta_from: str, max_ratio: float, codecs: tuple, quiet: bool
) -> None:
    """Adds `deltas` to each bundled target's result and writes bundles/deployment.json."""
    from edgebuild.bundling import _signer
    from edgebuild.fleet.deployment import write_deployment

    versions = [v.strip() for v in delta_from.split(",") if v.strip()]
    for version in versions:
        if not SEMVER.match(version):
            raise ConfigError(f"--delta-from: '{version}' is not a semantic version")
    bundled = {name: project.root / r.bundle for name, r in results.items() if getattr(r, "bundle", None)}
    if not bundled:
        return
    key = _signer(project, quiet)
    for name, bundle in bundled.items():
        made = []
        for version in versions:
            old = project.bundles_dir / f"{project.name}-{name}-{version}.tar.gz"
            if not old.is_file():
                print(
                    f"edgebuild: {name}: no bundle of version {version} in "
                    f"{relative_to_root(project.bundles_dir, project.root)}/, so no delta from it",
                    file=sys.stderr,
                )
                continue
            if old.resolve() == bundle.resolve():
                continue
            delta = checked_delta(old, bundle, project.bundles_dir, key, max_ratio, codecs)
            entry = delta.as_dict()
            if delta.path is not None:
                entry["delta"] = relative_to_root(delta.path, project.root)
            made.append(entry)
        results[name].deltas = made
    peaks = {name: (results[name].metadata.get("metrics") or {}).get("peak_rss_mb") for name in bundled}
    write_deployment(project.bundles_dir, project.name, bundled, {k: v for k, v in peaks.items() if v}, key)


def checked_delta(old, new, out_dir, key, max_ratio: float, codecs: tuple):
    """make_delta with its errors as the CLI's: a bundle that fails verification is a failure
    (exit 1), any other problem (two targets, a delta as input) a usage error (exit 2)."""
    from edgebuild.bundle import BundleError, BundleInvalid
    from edgebuild.fleet.delta import make_delta

    try:
        return make_delta(old, new, out_dir, key, max_ratio, codecs)
    except BundleInvalid as exc:
        raise BuildFailed(f"cannot make a delta: {exc}") from None
    except BundleError as exc:
        raise ConfigError(str(exc)) from None

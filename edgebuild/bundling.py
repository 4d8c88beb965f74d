"""From a finished build to bundles: gathers each target's artifacts, I/O, self-test, coverage,
metrics and provenance into a BundleSpec and hands it to edgebuild.bundle.

A bundle is rewritten only when what goes into it changed (a fingerprint of the spec, the artifact
digests and the signing key's identity), so a no-op `edgebuild all` neither re-tars nor re-signs.
Host latency figures vary from run to run, so they stay out of the signed manifest (which must be
reproducible byte for byte) and go to the JSON summary and report instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgebuild import __version__
from edgebuild.device_platform import bundle_requirements
from edgebuild.errors import BuildFailed, ConfigError
from edgebuild.fsutil import atomic_write_json, relative_to_root
from edgebuild.hashing import canonical_json, sha256_bytes
from edgebuild.project import SEMVER, Project
from edgebuild.runtimes import StepRecord, get_runtime

if TYPE_CHECKING:
    from edgebuild.build_result import BuildResult

UNREPRODUCIBLE_METRICS = ("latency", "peak_rss_mb", "int8_search")  # and every "*_seconds" figure


def bundle_targets(project: Project, build: BuildResult, version: str | None, quiet: bool) -> None:
    """Write (or keep) a signed bundle for each target of a collected build that did not fail; sets
    each TargetResult's `bundle`."""
    version = version or project.version
    if not SEMVER.match(version):
        raise ConfigError(f"--version '{version}' is not a semantic version (MAJOR.MINOR.PATCH)")
    state_file = project.state_dir / "state" / "bundles.json"
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        state = {}
    key_identity = _key_identity(project)
    signer = None
    changed = False
    for name, result in build.targets.items():
        if result.status == "failed":
            continue
        spec, digests = make_spec(project, build, name, version)
        fingerprint = sha256_bytes(canonical_json([__version__, key_identity, digests, _spec_json(spec)]))
        path = project.bundles_dir / f"{project.name}-{name}-{version}.tar.gz"
        known = state.get(name)
        if known and known["fingerprint"] == fingerprint and _same_file(path, known.get("stat")):
            result.bundle = relative_to_root(path, project.root)
            continue
        if signer is None:
            signer = _signer(project, quiet)
        written = _write(spec, project, signer)
        state[name] = {"fingerprint": fingerprint, "stat": _stat(written)}
        result.bundle = relative_to_root(written, project.root)
        changed = True
    if changed or (
        state and signed_file_needs_refresh(project.bundles_dir / "index.json", project.index_expiry_days)
    ):
        # an index past half its lifetime is re-signed, so devices never see it expire
        from edgebuild.bundle import update_index

        update_index(project.bundles_dir, (signer or _signer(project, quiet)), project.index_expiry_days)
    if changed:
        atomic_write_json(state_file, state)


def signed_file_needs_refresh(index: Path, expiry_days: int) -> bool:
    """A signed file with `expires` (index.json, deployment.json) that is missing, unreadable, or
    past half its lifetime (read here without importing the bundle package, which a no-op build
    should not pay for)."""
    import calendar
    import time

    try:
        expires = calendar.timegm(
            time.strptime(json.loads(index.read_bytes())["expires"], "%Y-%m-%dT%H:%M:%SZ")
        )
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return expires - time.time() < expiry_days * 86400 / 2


def _signer(project: Project, quiet: bool):
    from edgebuild.bundle import BundleError, resolve_signing_key

    try:
        key, source = resolve_signing_key(project.root, project.signing_key)
    except BundleError as exc:
        raise ConfigError(str(exc)) from None
    if not quiet and "development" in source:
        print(f"edgebuild: bundles signed with {source}", file=sys.stderr)
    return key


def _write(spec: dict, project: Project, key) -> Path:
    from edgebuild.bundle import BundleError, BundleSpec, VersionExists, write_bundle

    try:
        return write_bundle(BundleSpec(**spec), project.bundles_dir, key)
    except VersionExists as exc:
        raise ConfigError(f"{exc} (or pass --version)") from None
    except BundleError as exc:
        raise ConfigError(str(exc)) from None


def make_spec(project: Project, build: BuildResult, target: str, version: str) -> tuple[dict, dict]:
    """The BundleSpec's fields of one target (a plain dict, so a no-op build need not import the
    bundle package) and the digests of the files that go in."""
    plan, result = build.graph.targets[target], build.targets[target]
    resolved = plan.resolved
    nodes = build.steps_of(target)
    artifacts, digests, artifact_steps = {}, {}, []
    for artifact in plan.artifacts:
        outcome = build.outcomes[artifact.node]
        record = outcome.entry["outputs"].get(artifact.output) if outcome.entry else None
        if record is None:
            continue
        artifacts[artifact.filename] = _intact(
            project.build_dir / resolved.name / artifact.filename, record, build
        )
        digests[artifact.filename] = record["digest"]
        artifact_steps.append(_step_record(build.graph.nodes[artifact.node], outcome))
    # the runtime says which steps' metadata and outputs become the manifest's I/O and self-test
    manifest = get_runtime(resolved.recipe.runtime).manifest_metadata(
        [_step_record(node, outcome) for node, outcome in nodes], artifact_steps, resolved.params
    )
    selftest = None
    if manifest.selftest is not None:
        selftest = _intact(build.store.path(manifest.selftest["digest"]), manifest.selftest, build)
        digests["selftest.npz"] = manifest.selftest["digest"]
    metrics = {
        k: v
        for k, v in result.metadata.get("metrics", {}).items()
        if k not in UNREPRODUCIBLE_METRICS and not k.endswith("_seconds")
    }
    source = resolved.model.source
    provenance = {
        "source": {"path": relative_to_root(source, project.root), "sha256": build.stats.digest(source)},
        "steps": [
            {
                "id": node.uses[resolved.name],
                "step": node.step,
                "version": node.step_cls.version,
                "action_key": outcome.key,
                "toolchain": (outcome.parts or {}).get("toolchain"),
                # which converter route / quantizer made the artifact, where the step says (tflite.convert)
                **(
                    {"conversion": conv}
                    if (conv := (outcome.entry or {}).get("metadata", {}).get("conversion"))
                    else {}
                ),
            }
            for node, outcome in nodes
        ],
        "edgebuild_version": __version__,
    }
    spec = dict(
        project=project.name,
        version=version,
        target=resolved.name,
        device=resolved.device,
        recipe=resolved.recipe.name,
        runtime=resolved.recipe.runtime,
        artifacts=artifacts,
        io=manifest.io,
        selftest=selftest,
        status="deferred" if result.status == "deferred" else "built",
        remaining=result.reason if result.status == "deferred" else None,
        coverage=result.metadata.get("coverage"),
        metrics=metrics,
        provenance=provenance,
        runtime_options=manifest.runtime_options,
        requirements=bundle_requirements(resolved.device_profile),
    )
    return spec, digests


def _step_record(node, outcome) -> StepRecord:
    entry = outcome.entry or {}
    return StepRecord(
        step=node.step, outputs=entry.get("outputs") or {}, metadata=entry.get("metadata") or {}
    )


def _intact(path: Path, record: dict, build: BuildResult) -> Path:
    """`path` if its bytes are still those its cache record names (a stat while unchanged): a file
    changed since the build checked it never goes into a signed bundle."""
    from edgebuild.cache import listing_digest

    if not path.exists() or build.stats.digest(path) != listing_digest(record):
        raise BuildFailed(
            f"{relative_to_root(path, build.root)} no longer matches the build's digest "
            f"{record['digest'][:12]}; nothing was bundled: run the build again"
        )
    return path


def _spec_json(spec: dict) -> dict:
    data = dict(spec, artifacts=sorted(spec["artifacts"]), selftest=spec["selftest"] is not None)
    return json.loads(json.dumps(data, default=str))


def _key_identity(project: Project) -> list:
    """Which key would sign, without loading it: the configured file and its stat, or the variable."""
    env = os.environ.get("EDGEBUILD_SIGNING_KEY")
    if project.signing_key:
        path = project.root / project.signing_key
        return ["file", str(path), _stat(path)]
    if env:
        return ["env", sha256_bytes(env.encode())]
    dev = project.state_dir / "keys"
    return ["dev", [_stat(p) for p in sorted(dev.glob("*"))] if dev.is_dir() else None]


def _stat(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _same_file(path: Path, recorded) -> bool:
    return recorded is not None and _stat(path) == recorded

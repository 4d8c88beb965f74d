"""Copies a target's finished artifacts from the content store into build/<target>/.

A file already identical there is left alone (no-op builds write nothing); one the earlier
configuration made and this one does not is removed. Each copy is atomic and checked against the
digest its cache entry recorded, so build/ never holds a blob that changed under the build.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from edgebuild.errors import BuildFailed
from edgebuild.fsutil import atomic_copy, relative_to_root
from edgebuild.hashing import StatCache, folder_digest
from edgebuild.state import TargetState


def materialize(
    root: Path, name: str, plan, outcomes: Mapping, store, stats: StatCache, state: TargetState
) -> list[str]:
    """Copy the target's artifacts to build/<target>/, skipping files already identical; returns
    their paths relative to the project root and records them in `state`."""
    out_dir = root / "build" / name
    written = []
    for artifact in plan.artifacts:
        entry = outcomes[artifact.node].entry
        record = entry["outputs"].get(artifact.output) if entry else None
        if record is None:
            continue  # a deferred step's artifact that this host could not make
        dst = out_dir / artifact.filename
        want = listing_digest(record)
        if not (dst.exists() and stats.digest(dst) == want):
            atomic_copy(store.output_path(record), dst)
            if stats.digest(dst) != want:  # the blob changed since its entry was checked
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
                store.evict(record["digest"])
                raise BuildFailed(
                    f"content-store blob {record['digest'][:12]} changed during the build; "
                    "evicted: run the build again"
                )
        written.append(relative_to_root(dst, root))
    for stale in set(state.artifacts) - set(written):  # left over from an earlier configuration
        path = root / stale
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    state.artifacts = written
    return written


def listing_digest(record: dict) -> str:
    """The digest StatCache.digest gives the materialised file or folder."""
    if record["type"] == "file":
        return record["digest"]
    return folder_digest({rel: f["digest"] for rel, f in record["files"].items()})

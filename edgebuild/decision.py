"""The one decision per node: run it, take it from the cache, or leave it blocked, and why.

The scheduler (a real build, and `check`, which runs one) and `build -n` (explain.py) all ask
`decide()`, so a dry run can never disagree with the build about what would run. It is pure: it
reads the upstream outcomes and the action cache and changes nothing (the scheduler touches a hit).

Order matters and is the scheduler's: an upstream failure or deferral wins over everything; a node
whose model lacks its data is blocked before its key is computed; a node whose inputs are not known
yet (only in a dry run, where upstream steps have not run) or whose toolchain environment is not
installed yet must run; otherwise the action key decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edgebuild.actionkey import ToolchainMissing, action_key, key_parts, toolchain_versions

RUN, CACHED, BLOCKED = "run", "cached", "blocked"

# causes: one word per branch, for callers that explain a decision differently (explain.py)
UPSTREAM_BLOCKED = "upstream-blocked"
UPSTREAM_FAILED = "upstream-failed"
UPSTREAM_DEFERRED = "upstream-deferred"
NEEDS_DATA = "needs-data"
INPUTS_PENDING = "inputs-pending"
TOOLCHAIN_MISSING = "toolchain-missing"
CACHE_MISS = "cache-miss"
CACHE_HIT = "cache-hit"


@dataclass(frozen=True)
class Decision:
    action: str  # run | cached | blocked
    status: str  # the outcome it settles to: run | cached | deferred | blocked | failed
    cause: str  # one of the causes above
    reason: str | None = None  # the message shown for it (a hit: the entry's own message)
    key: str | None = None  # known once the key was computed (a hit or a miss)
    parts: dict | None = None
    entry: dict | None = None  # the action-cache entry of a hit


def input_digests(node, outcomes: Mapping) -> dict[str, str] | None:
    """Content digests of a node's inputs, or None while an upstream output is not known."""
    digests = {}
    for role, ref in node.inputs.items():
        if ref.node is None:
            digests[role] = ref.digest
            continue
        upstream = outcomes.get(ref.node)
        record = upstream.entry["outputs"].get(ref.output) if upstream and upstream.entry else None
        if record is None:
            return None
        digests[role] = record["digest"]
    return digests


def decide(node, graph, outcomes: Mapping, actions, remote_ok: Callable[[object], bool]) -> Decision:
    """What to do with `node` given its settled upstream `outcomes` (objects with status, message
    and entry) and the action cache; `remote_ok(node)` is remote_trust.py's rule."""
    blocked = _blocked_by(node, graph, outcomes)
    if blocked is not None:
        return blocked
    if node.missing:  # its model lacks data it needs: nothing to run, the note says how to add it
        return Decision(BLOCKED, "failed", NEEDS_DATA, graph.needs_data_message(node))
    # only in a dry run: upstream steps that would run first, so their outputs are not known yet
    pending = [
        graph.nodes[d].label for d in node.deps if outcomes[d].status == "run" and outcomes[d].entry is None
    ]
    if pending:
        return Decision(RUN, "run", INPUTS_PENDING, f"runs after {', '.join(pending)} (input not built yet)")
    try:
        versions = toolchain_versions(node)
    except ToolchainMissing as exc:  # the worker thread creates the environment, then computes the key
        return Decision(RUN, "run", TOOLCHAIN_MISSING, f"toolchain environment '{exc}' is not installed yet")
    key, parts = key_of(node, outcomes, versions)
    return look_up(key, parts, actions, remote_ok(node))


def key_of(node, outcomes: Mapping, versions: dict[str, str]) -> tuple[str, dict]:
    """The node's action key and the parts it hashes (state.py records them for explain.py)."""
    parts = key_parts(node, input_digests(node, outcomes), versions)
    return action_key(parts), parts


def look_up(key: str, parts: dict, actions, remote: bool) -> Decision:
    """The action cache's part of the decision: a hit or a miss. The scheduler asks it again under
    the key's lock, after creating a missing toolchain environment."""
    entry = actions.get(key, remote=remote)
    if entry is None:
        return Decision(RUN, "run", CACHE_MISS, "no cache entry", key=key, parts=parts)
    return Decision(
        CACHED,
        "cached" if entry["status"] == "ok" else "deferred",
        CACHE_HIT,
        entry.get("message"),
        key=key,
        parts=parts,
        entry=entry,
    )


def _blocked_by(node, graph, outcomes: Mapping) -> Decision | None:
    for dep in node.deps:
        upstream = outcomes[dep]
        label = graph.nodes[dep].label
        if upstream.status == "blocked":  # already names the root cause
            return Decision(BLOCKED, "blocked", UPSTREAM_BLOCKED, upstream.message)
        if upstream.status == "failed":
            return Decision(
                BLOCKED,
                "blocked",
                UPSTREAM_FAILED,
                f"not run: {label} failed: {first_line(upstream.message)}",
            )
        if upstream.status == "deferred":
            entry = upstream.entry or {}  # a step deferred by its own upstream has no entry
            needed = [r.output for r in node.inputs.values() if r.node == dep]
            if any(o not in entry.get("outputs", {}) for o in needed):
                return Decision(
                    BLOCKED, "deferred", UPSTREAM_DEFERRED, upstream.message or entry.get("message")
                )
    return None


def first_line(message: str | None) -> str:
    lines = (message or "no reason given").strip().splitlines()
    return lines[0] if lines else "no reason given"

"""Which steps may take an unauthenticated remote cache entry.

Without $EDGEBUILD_REMOTE_CACHE_KEY nobody vouches for the remote server's action entries: one may
name any blob, e.g. another artifact's. Such entries are still a large saving for conversions, so
they are taken for those, on one condition: a verification step re-checks the result here before
anything is bundled. Verification steps (those that write the bundle's self-test, the output their
runtime names `selftest_output`, after running the artifact against its source on the evaluation
data) therefore never take a remote hit, and neither does any step that feeds them anything other
than the artifact under test (e.g. the reference model `onnx.check` makes): a poisoned reference
could make a poisoned artifact pass.
"""

from __future__ import annotations

import sys


def is_verification(node, graph) -> bool:
    """The node writes the self-test of a target using it (the output its runtime declares)."""
    from edgebuild.runtimes import get_runtime

    outputs = getattr(node.step_cls, "outputs", ())
    return any(
        get_runtime(graph.targets[target].resolved.recipe.runtime).selftest_output in outputs
        for target in node.uses
        if target in graph.targets
    )


def local_only_nodes(graph) -> set[str]:
    """Ids of the nodes whose results must come from this host when remote entries are not
    authenticated: every verification node and everything upstream of its non-artifact inputs."""
    artifact_nodes = {a.node for plan in graph.targets.values() for a in plan.artifacts}
    local: set[str] = set()
    pending: list[str] = []
    for nid, node in graph.nodes.items():
        if not is_verification(node, graph):
            continue
        local.add(nid)
        pending.extend(
            ref.node for ref in node.inputs.values() if ref.node and ref.node not in artifact_nodes
        )
    while pending:
        nid = pending.pop()
        if nid in local:
            continue
        local.add(nid)
        node = graph.nodes[nid]
        pending.extend(node.deps)
    return local


def _data_inputs(node) -> list[str]:
    return [ref.node for ref in node.inputs.values() if ref.node]


def drop_after_failed_verification(graph, outcomes: dict, actions) -> list[str]:
    """A verification failed on results taken from an unauthenticated remote: forget those results
    (their local copies, and the remote entries for those keys from now on), so the next build makes
    them here instead of taking the same entries again. Returns the labels of the steps dropped."""
    from edgebuild.cache import UNVERIFIED

    dropped: list[str] = []
    for nid, outcome in outcomes.items():
        node = graph.nodes[nid]
        if outcome.status != "failed" or not is_verification(node, graph):
            continue
        pending, seen = _data_inputs(node), set()
        while pending:
            dep = pending.pop()
            if dep in seen:
                continue
            seen.add(dep)
            upstream = outcomes.get(dep)
            if upstream is not None and upstream.key and (upstream.entry or {}).get(UNVERIFIED):
                actions.distrust(upstream.key)
                dropped.append(graph.nodes[dep].label)
            pending.extend(_data_inputs(graph.nodes[dep]))
    dropped = sorted(set(dropped))
    if dropped:
        print(
            f"edgebuild: warning: a verification failed on results taken from the remote cache without "
            f"EDGEBUILD_REMOTE_CACHE_KEY ({', '.join(dropped)}); they are dropped: the next build makes "
            "them here",
            file=sys.stderr,
            flush=True,
        )
    return dropped

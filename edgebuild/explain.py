"""`build --dry-run`: what would run, and why, without running anything.

Each node's key parts are compared with those recorded by the last build of the same target step
(state.py), so the reason names what changed: the step's version, a parameter, a toolchain
version, or which input file changed.
"""
from __future__ import annotations

from edgebuild.actionkey import ToolchainMissing, action_key, key_parts, toolchain_versions
from edgebuild.scheduler import Outcome, Scheduler
from edgebuild.state import TargetState


def why_changed(old: dict | None, new: dict, node) -> list[str]:
    if old is None:
        return ["no cache entry: never built"]
    reasons = []
    if old.get("step") != new["step"] or old.get("version") != new["version"]:
        reasons.append(f"step {new['step']} version {old.get('version')} -> {new['version']}")
    for name in sorted(set(old.get("params", {})) | set(new["params"])):
        before, after = old.get("params", {}).get(name), new["params"].get(name)
        if before != after:
            reasons.append(f"parameter {name}: {before!r} -> {after!r}")
    for name in sorted(set(old.get("toolchain", {})) | set(new["toolchain"])):
        before, after = old.get("toolchain", {}).get(name), new["toolchain"].get(name)
        if before != after:
            reasons.append(f"toolchain {name}: {before} -> {after}")
    for role in sorted(set(old.get("inputs", {})) | set(new["inputs"])):
        if old.get("inputs", {}).get(role) != new["inputs"].get(role):
            reasons.append(f"input '{role}' changed ({node.inputs[role].label})" if role in node.inputs
                           else f"input '{role}' removed")
    return reasons or ["cache entry missing (cleaned or evicted)"]


def dry_run(sched: Scheduler) -> list[dict]:
    """One row per node: label, step, targets, would_run, reasons."""
    states: dict[str, TargetState] = {}
    rows = []
    for nid in sched.graph.run_order():
        node = sched.graph.nodes[nid]
        target, step_id = next(iter(node.uses.items()))
        state = states.setdefault(target, TargetState.load(sched.root, target))
        row = {"label": node.label, "step": node.step, "targets": sorted(node.uses), "would_run": True}
        pending = [sched.graph.nodes[d].label for d in node.deps if sched.outcomes[d].status != "cached"]
        if node.missing:
            row["reasons"] = [f"cannot run: {sched.graph.needs_data_message(node)}"]
            sched.outcomes[nid] = Outcome("run")
        elif pending:
            row["reasons"] = [f"runs after {', '.join(pending)} (input not built yet)"]
            sched.outcomes[nid] = Outcome("run")
        else:
            try:
                versions = toolchain_versions(node)
            except ToolchainMissing as exc:
                row["reasons"] = [f"toolchain environment '{exc}' is not installed yet"]
                sched.outcomes[nid] = Outcome("run")
                rows.append(row)
                continue
            parts = key_parts(node, sched.input_digests(node), versions)
            key = action_key(parts)
            entry = sched.cache.actions.get(key, remote=sched.remote_ok(node))
            if entry is not None:
                row.update(would_run=False, reasons=[])
                sched.outcomes[nid] = Outcome("cached", key=key, parts=parts, entry=entry)
            else:
                row["reasons"] = why_changed(state.steps.get(step_id, {}).get("parts"), parts, node)
                sched.outcomes[nid] = Outcome("run")
        rows.append(row)
    return rows

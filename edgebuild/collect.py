"""From a finished run to one result per target: its status (a failed or blocked step fails it, a
deferred one defers it, any step that ran makes it built, else cached), the metadata its steps
reported (merged downstream over upstream), gates that could not be measured, and its artifacts
copied into build/ (materialize.py). Records each target's step keys for `build -n`'s reasons.
"""

from __future__ import annotations

import dataclasses

from edgebuild.build_result import BuildResult, TargetResult
from edgebuild.decision import first_line
from edgebuild.fsutil import relative_to_root
from edgebuild.materialize import materialize
from edgebuild.state import TargetState


def collect_targets(build: BuildResult) -> BuildResult:
    """The same build with `targets` filled in, one TargetResult per target of its graph."""
    results = {}
    for name, plan in build.graph.targets.items():
        state = TargetState.load(build.root, name)
        outcomes = build.steps_of(name)
        result = TargetResult(
            name=name, status="cached", recipe=plan.resolved.recipe.name, device=plan.resolved.device
        )
        failed = next(((n, o) for n, o in outcomes if o.status == "failed"), None)
        blocked = next(((n, o) for n, o in outcomes if o.status == "blocked"), None)
        deferred = next(((n, o) for n, o in outcomes if o.status == "deferred"), None)
        if failed or blocked:
            node, outcome = failed or blocked
            result.status = "failed"
            result.failed_step = node.uses[name]
            result.log = str(outcome.log) if outcome.log else None
            result.reason = f"step '{node.uses[name]}' ({node.step}) failed: {outcome.message}"
            if failed and outcome.log:
                result.reason += f" (log: {relative_to_root(outcome.log, build.root)})"
        elif deferred:
            result.status = "deferred"
            result.reason = f"step '{deferred[0].uses[name]}' deferred: {deferred[1].message}"
        elif any(o.status == "run" for _, o in outcomes):
            result.status = "built"
        for node, outcome in outcomes:
            if outcome.entry:
                merge_metadata(result.metadata, outcome.entry.get("metadata", {}))
        if result.status != "failed":
            unmeasured = unmeasured_gates(plan.resolved, result.metadata.get("metrics"))
            if unmeasured:
                result.metadata["metrics"] = {**result.metadata["metrics"], "not_measured": unmeasured}
        if result.status != "failed":
            result.artifacts = materialize(
                build.root, name, plan, build.outcomes, build.store, build.stats, state
            )
        state.record_steps({node.uses[name]: _step_record(o) for node, o in outcomes if o.key is not None})
        state.save()
        results[name] = result
    return dataclasses.replace(build, targets=results)


def _step_record(outcome) -> dict:
    """What `build -n` compares next time; a failure is never cached, so it says why it reruns."""
    record = {"key": outcome.key, "parts": outcome.parts}
    if outcome.status == "failed":
        record["failed"] = first_line(outcome.message)
    return record


LABEL_GATES = {"max_accuracy_drop": "accuracy_drop", "max_class_drop": "worst_class_drop"}


def unmeasured_gates(resolved, metrics: dict | None) -> dict[str, str]:
    """Gates the target sets that need labels but that verification could not evaluate:
    {gate: why}. Reported as `not measured`; `--strict` fails on them."""
    if not metrics:
        return {}
    found = {}
    for gate, figure in LABEL_GATES.items():
        limit = resolved.params.get(gate)
        if limit is None or isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
            continue  # the gate is off
        if figure not in metrics:
            found[gate] = (
                "no labels"
                if resolved.model.evaluation is None
                else "no labels in the evaluation data, or not a classifier output"
            )
    return found


def merge_metadata(into: dict, metadata: dict) -> None:
    """Later (downstream) steps refine earlier ones: metrics merge; a coverage report replaces the
    earlier one, except that a measured report (a compiler's log, `source` other than "prediction")
    is never replaced by a prediction."""
    for key, value in metadata.items():
        if key == "coverage":
            measured = (into.get(key) or {}).get("source", "prediction") != "prediction"
            if not measured or (value or {}).get("source", "prediction") != "prediction":
                into[key] = value
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = {**into[key], **value}
        else:
            into[key] = value

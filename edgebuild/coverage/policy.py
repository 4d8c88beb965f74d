"""A target's coverage policy (targets.toml: `fallback`, `min_accelerated_share`) applied to a report."""

from __future__ import annotations

from typing import Any

from .partition import FALLBACK, RESTRICTION, UNSUPPORTED
from .report import CoverageReport

FALLBACK_CHOICES = ("error", "warn")


class PolicyError(ValueError):
    """The policy itself is malformed (names the key)."""


def validate_policy(policy: dict[str, Any], source: str = "policy") -> dict[str, Any]:
    fallback = policy.get("fallback", "warn")
    if fallback not in FALLBACK_CHOICES:
        raise PolicyError(
            f"{source}: fallback must be one of {', '.join(FALLBACK_CHOICES)}, got {fallback!r}"
        )
    share = policy.get("min_accelerated_share")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1
    ):
        raise PolicyError(f"{source}: min_accelerated_share must be a number between 0 and 1, got {share!r}")
    return {"fallback": fallback, "min_accelerated_share": share}


def evaluate_policy(report: CoverageReport, policy: dict[str, Any]) -> list[str]:
    """Violations of the policy, one line each; empty when the target may be built.

    Only certainties stop a build: ops with no converter at all, graph errors (string or sequence
    I/O, dynamic shapes without input_shapes) and the target's own policy. A predicted problem
    (`certain` False: learned from node tests or documented restrictions) is advice: the converter
    simply tries, and its real result replaces the prediction. CPU fallback violates only with
    fallback = "error". min_accelerated_share compares with the share of multiply-accumulates kept
    on the target (of ops when the model has no MAC-heavy op).
    """
    policy = validate_policy(policy)
    label = report.target or report.route
    problems: list[str] = []
    for status in (UNSUPPORTED, RESTRICTION):
        bad = [n for n in report.blocking if n.status == status]
        if bad:
            first = bad[0]
            problems.append(
                f"{label}: {len(bad)} node(s) {status}, first {first.op} '{first.node}': {first.reason}"
            )
    problems += [f"{label}: {issue.message}" for issue in report.errors]
    fallback = [n for n in report.nodes if n.status == FALLBACK]
    if fallback and policy["fallback"] == "error":
        first = fallback[0]
        problems.append(
            f'{label}: {len(fallback)} node(s) fall back to the CPU (fallback = "error"), '
            f"first {first.op} '{first.node}': {first.reason}"
        )
    minimum = policy["min_accelerated_share"]
    if minimum is not None and report.accelerated_share < minimum:
        what = "MACs" if report.macs_share is not None else "ops"
        problems.append(
            f"{label}: {report.accelerated_share:.1%} of {what} on the accelerator, "
            f"below min_accelerated_share = {minimum}"
        )
    return problems

"""What a build hands on: per node the scheduler's Outcome, per target its TargetResult, and the
BuildResult that bundling, the summary and `check` read instead of reaching into a live Scheduler.

Data only: no module here runs or decides anything (scheduler.py runs, collect.py sums up targets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgebuild.cache import ContentStore
    from edgebuild.decision import Decision
    from edgebuild.graph import Graph, Node
    from edgebuild.hashing import StatCache


@dataclass
class Outcome:
    status: str  # cached | run | deferred | failed | blocked
    key: str | None = None
    parts: dict | None = None
    entry: dict | None = None  # action-cache entry: outputs, metadata, status, message
    message: str | None = None
    log: Path | None = None
    seconds: float = 0.0

    @classmethod
    def of(cls, decision: Decision) -> Outcome:
        """The outcome a decision settles a node to without running it."""
        return cls(
            decision.status,
            key=decision.key,
            parts=decision.parts,
            entry=decision.entry,
            message=decision.reason,
        )


@dataclass
class TargetResult:
    name: str
    status: str  # built | cached | failed | deferred
    recipe: str
    device: str = ""
    artifacts: list[str] = field(default_factory=list)
    reason: str | None = None
    bundle: str | None = None  # set by bundling
    failed_step: str | None = None
    log: str | None = None
    metadata: dict = field(default_factory=dict)  # metrics/coverage/io gathered from the steps
    deltas: list = field(default_factory=list)  # delta bundles made for it (all --delta-from)


@dataclass(frozen=True)
class BuildResult:
    """A finished run of a step graph. `targets` is empty until collect.collect_targets() sums the
    outcomes up per target (check needs only the outcomes and collects nothing)."""

    root: Path  # the project root
    graph: Graph
    outcomes: Mapping[str, Outcome]  # per node id
    store: ContentStore  # holds every output an outcome's entry names
    stats: StatCache  # file digests, shared with the build (a stat per unchanged file)
    targets: Mapping[str, TargetResult] = field(default_factory=dict)

    def steps_of(self, target: str) -> list[tuple[Node, Outcome]]:
        """The target's nodes with their outcomes, in the target's step order."""
        return [(self.graph.nodes[nid], self.outcomes[nid]) for nid in self.graph.targets[target].nodes]

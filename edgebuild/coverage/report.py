"""CoverageReport: per-node verdicts for one route, the table users read, and its JSON form."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .partition import FALLBACK, RESTRICTION, SUPPORTED, UNSUPPORTED, Partition

STATUSES = (SUPPORTED, RESTRICTION, UNSUPPORTED, FALLBACK)
MAX_NAMES = 5  # node names listed per table row


@dataclass
class NodeResult:
    node: str  # node name, prefixed by its subgraph path
    op: str  # "Conv", or "com.microsoft::FusedConv" outside the standard domain
    status: str
    reason: str = ""
    macs: int = 0
    predicted: bool = False  # derived from a predicted conversion, not from the artifact itself
    counted: bool = True  # False for constants the converter folds away: not ops at run time
    certain: bool = True  # False: a predicted problem (advice), which never blocks a build

    @property
    def on_accelerator(self) -> bool:
        return self.status == SUPPORTED

    @property
    def problem(self) -> bool:
        return self.status in (UNSUPPORTED, RESTRICTION)

    def to_json(self) -> dict[str, Any]:
        out = {
            "node": self.node,
            "op": self.op,
            "status": self.status,
            "reason": self.reason,
            "macs": self.macs,
        }
        if self.problem and not self.certain:
            out["predicted"] = True
        return out


@dataclass
class Issue:
    level: str  # "error" (breaks the build) or "warning"
    message: str

    def to_json(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message}


@dataclass
class CoverageReport:
    route: str
    model: str
    table: str  # data file(s) and their source/version line
    nodes: list[NodeResult] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    partition: Partition | None = None  # order-dependent routes only (Edge TPU)
    notes: list[str] = field(default_factory=list)
    target: str | None = None
    domains: dict[str, int] = field(default_factory=dict)  # non-standard domains -> node count

    # --- figures -----------------------------------------------------------------------------
    def count(self, status: str) -> int:
        return sum(n.status == status for n in self.nodes)

    @property
    def ops_share(self) -> float:
        """Share of run-time ops (folded constants excluded) on the target."""
        ops = [n for n in self.nodes if n.counted]
        return sum(n.on_accelerator for n in ops) / len(ops) if ops else 1.0

    @property
    def macs_share(self) -> float | None:
        total = sum(n.macs for n in self.nodes)
        return sum(n.macs for n in self.nodes if n.on_accelerator) / total if total else None

    @property
    def accelerated_share(self) -> float:
        """Share of multiply-accumulates on the target (of ops when the model has no MAC-heavy op)."""
        macs = self.macs_share
        return self.ops_share if macs is None else macs

    @property
    def ok(self) -> bool:
        return not self.count(UNSUPPORTED) and not self.count(RESTRICTION) and not self.errors

    @property
    def blocking(self) -> list[NodeResult]:
        """Nodes that certainly cannot be converted (no converter at all): these stop a build."""
        return [n for n in self.nodes if n.problem and n.certain]

    @property
    def advice(self) -> list[NodeResult]:
        """Nodes predicted to fail (from measured node tests or documented restrictions): shown,
        never a stop; the conversion itself is the authority."""
        return [n for n in self.nodes if n.problem and not n.certain]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    # --- views -------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per (op, status): how many nodes, which ones, and why."""
        groups: dict[tuple[str, str], list[NodeResult]] = {}
        for n in self.nodes:
            groups.setdefault((n.op, n.status), []).append(n)
        order = {s: i for i, s in enumerate((UNSUPPORTED, RESTRICTION, FALLBACK, SUPPORTED))}
        rows = []
        for (op, status), members in sorted(groups.items(), key=lambda kv: (order[kv[0][1]], kv[0][0])):
            reasons = list(dict.fromkeys(m.reason for m in members if m.reason))
            row = {
                "op": op,
                "count": len(members),
                "status": status,
                "nodes": [m.node for m in members],
                "reasons": reasons,
            }
            if any(m.problem and not m.certain for m in members):
                row["predicted"] = True
            rows.append(row)
        return rows

    def summary_line(self) -> str:
        label = self.target or self.route
        counts = Counter(n.status for n in self.nodes)
        parts = [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
        share = f"{self.ops_share:.1%} of ops"
        if self.macs_share is not None:
            share += f", {self.macs_share:.1%} of MACs"
        line = f"{label} ({self.route}): {len(self.nodes)} nodes: {', '.join(parts) or 'none'}; on target {share}"
        first = self._first_problem()
        if first:
            line += f"; first problem: {first}"
        return line

    def _first_problem(self) -> str | None:
        for n in self.blocking:
            return f"{n.op} '{n.node}' {n.status}: {n.reason}"
        if self.errors:
            return self.errors[0].message
        for n in self.advice:
            return f"{n.op} '{n.node}' {n.status} (predicted, not a stop): {n.reason}"
        if self.errors:
            return self.errors[0].message
        if self.partition is not None and self.partition.first_fallback_index is not None:
            p = self.partition
            return f"CPU from {p.first_fallback_op} #{p.first_fallback_index}: {p.first_fallback_reason}"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "target": self.target,
            "model": self.model,
            "table": self.table,
            "ok": self.ok,
            "summary": self.summary_line(),
            "blocking": len(self.blocking),
            "advice": len(self.advice),
            "predicted": any(n.predicted for n in self.nodes),  # mapping predicted, not read from an artifact
            "counts": {s: self.count(s) for s in STATUSES},
            "total_nodes": len(self.nodes),
            "ops_share": round(self.ops_share, 6),
            "macs_share": None if self.macs_share is None else round(self.macs_share, 6),
            "accelerated_share": round(self.accelerated_share, 6),
            "non_standard_domains": dict(self.domains),
            "issues": [i.to_json() for i in self.issues],
            "notes": list(self.notes),
            "rows": [
                {**row, "nodes": row["nodes"][:MAX_NAMES], "more_nodes": max(0, row["count"] - MAX_NAMES)}
                for row in self.rows()
            ],
            "partition": None if self.partition is None else self.partition.to_json(placements=False),
            # per-node detail last, under "nodes": bundle manifests drop this key to stay small
            "nodes": [n.to_json() for n in self.nodes],
        }

    def render(self, console) -> None:
        """Print the per-op table and the summary line on a rich Console."""
        from rich.table import Table

        title = f"{self.target or self.route} - {self.route} ({self.model})"
        table = Table(title=title, show_lines=False)
        for col, kw in (("op", {}), ("count", {"justify": "right"}), ("status", {}), ("nodes / why", {})):
            table.add_column(col, **kw)
        style = {SUPPORTED: "green", FALLBACK: "yellow", RESTRICTION: "red", UNSUPPORTED: "bold red"}
        for row in self.rows():
            detail = ""
            if row["status"] != SUPPORTED:
                names = ", ".join(row["nodes"][:MAX_NAMES]) + (
                    " ..." if len(row["nodes"]) > MAX_NAMES else ""
                )
                detail = names + ("\n" + "; ".join(row["reasons"][:3]) if row["reasons"] else "")
            status = f"[{style[row['status']]}]{row['status']}[/]"
            if row.get("predicted"):
                status = f"[yellow]{row['status']} (predicted)[/]"
            table.add_row(row["op"], str(row["count"]), status, detail)
        console.print(table)
        for issue in self.issues:
            console.print(
                f"[{'red' if issue.level == 'error' else 'yellow'}]{issue.level}:[/] {issue.message}",
                highlight=False,
            )
        for note in self.notes:
            console.print(f"note: {note}", highlight=False, style="dim")
        console.print(self.summary_line(), highlight=False, markup=False)


@dataclass
class RouteResult:
    """What a route module returns: per-node verdicts in graph order, graph-level issues, notes."""

    verdicts: list = field(default_factory=list)  # (NodeInfo, status, reason)
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partition: Partition | None = None
    table: str = ""
    predicted: bool = False
    uncounted: set = field(default_factory=set)  # node indices folded away (not in the ops share)
    advisory: set = field(default_factory=set)  # node indices whose problem verdict is a prediction

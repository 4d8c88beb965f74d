"""The Core ML route: ONNX -> onnx2torch -> torch.jit.trace -> coremltools (mlprogram).

A node converts when onnx2torch has a converter for its op's since-version; the table also
records what coremltools then cannot take (facts/coreml.md).
"""

from __future__ import annotations

from .graph_walk import NodeInfo, WalkedGraph
from .partition import RESTRICTION, SUPPORTED, UNSUPPORTED
from .report import Issue, RouteResult
from .tables import load_table

TABLE = "coreml-onnx2torch-ops.tsv"


def _cumsum_reverse_explicit(node: NodeInfo) -> str | None:
    return (
        None
        if "reverse" in node.attrs
        else "reverse attribute missing: onnx2torch 1.5.15 reads it as 1 (set it)"
    )


def _prelu_rank3_shared_slope(node: NodeInfo) -> str | None:
    x = node.inputs[0] if node.inputs else None
    slope = node.inputs[1] if len(node.inputs) > 1 else None
    if x is None or slope is None or x.shape is None or slope.shape is None or len(x.shape) != 3:
        return None
    return None if all(d == 1 for d in slope.shape) else "rank-3 PReLU needs one shared slope"


RULES = {
    "cumsum_reverse_explicit": _cumsum_reverse_explicit,
    "prelu_rank3_shared_slope": _prelu_rank3_shared_slope,
}


def check_node(node: NodeInfo, rows: dict[str, dict]) -> tuple[str, str]:
    if node.domain:
        return UNSUPPORTED, f"domain '{node.domain}' has no onnx2torch converter"
    row = rows.get(node.op_type)
    if row is None:
        return UNSUPPORTED, f"onnx2torch has no converter for {node.op_type}"
    versions = {int(v) for v in row["versions"].split(",") if v}
    if node.since_version is not None and node.since_version not in versions:
        return UNSUPPORTED, (
            f"onnx2torch converts {node.op_type} versions {sorted(versions)}, not {node.since_version}"
        )
    if row["status"] != "Y":
        return UNSUPPORTED, row["note"] or f"{node.op_type} does not convert on this route"
    rule = RULES.get(row["rule"])
    problem = rule(node) if rule else None
    return (RESTRICTION, problem) if problem else (SUPPORTED, row["note"])


def check(graph: WalkedGraph, settings: dict) -> RouteResult:
    table = load_table(TABLE)
    rows = {r["op"]: r for r in table.rows}
    result = RouteResult(table=f"{TABLE}: {table.source[0]}")
    for t in graph.dynamic_inputs:
        result.issues.append(
            Issue(
                "warning",
                f"input '{t.name}' has dynamic shape {list(t.shape or [])}: "
                "tracing bakes in one shape; set input_shapes",
            )
        )
    control = [n for n in graph.nodes if n.subgraphs]
    if control:
        result.notes.append(f"{len(control)} control-flow node(s): tracing keeps only the branch taken")
    result.verdicts = [(n, *check_node(n, rows)) for n in graph.nodes]
    return result

"""The TFLite route: ONNX -> onnx2tf -> TFLite.

Two tables: tflite-onnx2tf-ops.tsv lists the ops onnx2tf has a converter for and the TFLite
builtins each typically becomes (used by the Edge TPU prediction); tflite-onnx2tf-measured.tsv
holds rules measured by converting the ONNX node tests with edgebuild's own tflite.convert step
(which dtypes, attributes and ranks of an op convert and give the right numbers). A measured rule
decides where one matches; ops it does not cover fall back to the converter list.

Only "no converter for this op at all" is certain; every other verdict against a node is a
prediction, reported as advice (RouteResult.advisory) that never stops a build: the conversion
itself decides, and `check --convert` reports its real result.
"""

from __future__ import annotations

from functools import lru_cache

from .graph_walk import NodeInfo, WalkedGraph
from .node_features import features, matches, parse_condition
from .partition import RESTRICTION, SUPPORTED, UNSUPPORTED
from .report import Issue, RouteResult
from .tables import load_table

TABLE = "tflite-onnx2tf-ops.tsv"
MEASURED = "tflite-onnx2tf-measured.tsv"
UNKNOWN = "?"
# Element types TFLite (and TensorFlow underneath onnx2tf) have no tensors or kernels for.
NO_TFLITE_TYPE = {
    "bfloat16",
    "float8e4m3fn",
    "float8e4m3fnuz",
    "float8e5m2",
    "float8e5m2fnuz",
    "float8e8m0",
    "float4e2m1",
    "int4",
    "uint4",
    "int2",
    "uint2",
}


@lru_cache(maxsize=None)
def onnx2tf_rows() -> dict[str, dict]:
    return {r["op"]: r for r in load_table(TABLE).rows}


@lru_cache(maxsize=None)
def measured_rules() -> dict[str, list[dict]]:
    """op -> its measured rules in order, each with the parsed condition under 'condition'."""
    return rules_from_rows(load_table(MEASURED).rows)


def rules_from_rows(rows) -> dict[str, list[dict]]:
    rules: dict[str, list[dict]] = {}
    for row in rows:
        rules.setdefault(row["op"], []).append(dict(row, condition=parse_condition(row["when"])))
    return rules


def measured_verdict(node: NodeInfo, rules: dict[str, list[dict]] | None = None) -> tuple[str, str] | None:
    """The first measured rule of the node's op that matches it, as (status, reason); None when the
    op was not measured. `rules` replaces the shipped table (the honesty benchmark's held-out folds)."""
    op_rules = (measured_rules() if rules is None else rules).get(node.op_type)
    if not op_rules:
        return None
    feats = features(node)
    for rule in op_rules:
        if matches(feats, rule["condition"]) and _in_scope(feats, rule["condition"]):
            scope = "" if rule["when"] == "*" else f" with {rule['when']}"
            evidence = f"measured: {rule['evidence']} onnx node tests{scope} converted and matched"
            if rule["verdict"] == "converts":
                return SUPPORTED, evidence
            status = UNSUPPORTED if rule["when"] == "*" else RESTRICTION
            return status, f"{rule['reason'] or 'fails'} ({evidence})"
    return None


def _in_scope(feats: dict[str, str], condition: list[tuple[str, str]]) -> bool:
    """Whether the node tests behind a rule looked like this node. They feed every input as a graph
    input, so a rule says nothing about a node whose input k is a constant (Clip's bounds, Resize's
    scales, a Conv's weights) unless its condition names `ink.const` itself; such a node falls
    back to the converter list (the issue-15 Clip case: 0/2 tests with the bounds as graph inputs
    flagged every ReLU6)."""
    named = {key for key, _ in condition}
    for key, value in feats.items():
        if key.endswith(".const") and value == "yes" and key not in named:
            return False
    return True


def tflite_ops_for(node: NodeInfo) -> list[str] | None:
    """TFLite builtins predicted for one ONNX node in the Edge TPU recipe's integer-only int8 file
    ([] = folded away, None = not transcribed)."""
    row = onnx2tf_rows().get(node.op_type)
    if row is None or row["tflite_ops"] == UNKNOWN:
        return None
    ops = [o for o in row["tflite_ops"].split(",") if o]
    a = node.attrs
    if node.op_type == "Conv":
        x = node.inputs[0]
        channels = x.shape[1] if x is not None and x.shape and len(x.shape) > 1 else None
        kernel = a.get("kernel_shape") or []
        if len(kernel) == 3 or (x is not None and x.shape and len(x.shape) == 5):
            return ["CONV_3D"]
        if a.get("group", 1) > 1 and a.get("group") == channels:
            return ["DEPTHWISE_CONV_2D"]
    elif node.op_type == "MatMul":
        w = node.inputs[1] if len(node.inputs) > 1 else None
        if w is not None and w.constant and w.shape is not None and len(w.shape) == 2:
            return ["FULLY_CONNECTED"]
    elif node.op_type == "Resize" and a.get("mode", "nearest") == "nearest":
        return ["RESIZE_NEAREST_NEIGHBOR"]
    elif node.op_type == "Pad" and a.get("mode", "constant") in ("reflect", "edge"):
        return ["MIRROR_PAD"]
    elif node.op_type == "Clip":
        lo, hi = (node.inputs[i] if len(node.inputs) > i else None for i in (1, 2))
        bounds = (
            lo.value[0] if lo is not None and lo.value else None,
            hi.value[0] if hi is not None and hi.value else None,
        )
        if bounds != (0.0, 6.0):
            # integer-only int8 (the Edge TPU recipe) rewrites constant-bound Clips into these
            return (
                ["RELU", "SUB"] if None not in bounds or "min" in a or "max" in a else ["MINIMUM", "MAXIMUM"]
            )
    elif node.op_type == "HardSigmoid":
        return ["MUL", "ADD", "RELU", "SUB"]  # the integer-only rewrite (steps/tflite/prepare.py)
    elif node.op_type == "LeakyRelu" and a.get("alpha", 0.01) < 1:
        return ["MUL", "MAXIMUM"]  # the integer-only rewrite
    elif (
        node.op_type == "Div"
        and len(node.inputs) > 1
        and node.inputs[1] is not None
        and node.inputs[1].constant
    ):
        return ["MUL"]  # division by a constant becomes a multiplication
    elif node.op_type == "LSTM" and a.get("direction", "forward") == "bidirectional":
        return ["BIDIRECTIONAL_SEQUENCE_LSTM"]
    return ops


def check_node(node: NodeInfo, rules: dict[str, list[dict]] | None = None) -> tuple[str, str]:
    status, reason, _certain = judge_node(node, rules)
    return status, reason


def judge_node(node: NodeInfo, rules: dict[str, list[dict]] | None = None) -> tuple[str, str, bool]:
    """(status, reason, certain). Certain: no converter for the op at all. Everything else a rule
    says against a node is a prediction (node tests vary one op in isolation; whole models fold,
    fuse and reshape around it), so it is advice and the converter gets to try."""
    if node.domain:
        return UNSUPPORTED, f"domain '{node.domain}' has no onnx2tf converter", True
    row = onnx2tf_rows().get(node.op_type)
    if row is None:
        return UNSUPPORTED, f"onnx2tf has no converter for {node.op_type}", True
    status, reason = _predicted_verdict(node, row, rules)
    return status, reason, status == SUPPORTED


def _predicted_verdict(node: NodeInfo, row: dict, rules) -> tuple[str, str]:
    for t in [*node.inputs, *node.outputs]:
        if t is not None and t.dtype in NO_TFLITE_TYPE:
            return RESTRICTION, f"tensor '{t.name}' is {t.dtype}: TFLite has no such tensor type"
    measured = measured_verdict(node, rules)
    if measured is not None:
        return measured
    for slot in (int(i) for i in row["const_inputs"].split(",") if i):
        t = node.inputs[slot] if slot < len(node.inputs) else None
        if t is not None and not t.constant:
            return RESTRICTION, f"input {slot} ('{t.name}') must be a constant for a static TFLite graph"
    return SUPPORTED, row["note"]


def graph_problems(graph: WalkedGraph) -> list[str]:
    """What edgebuild's tflite.convert refuses whatever the ops: inputs it cannot make static, and
    inputs or outputs its I/O description cannot bind to TFLite tensors."""
    problems = []
    for role, tensors in (("input", graph.inputs), ("output", graph.outputs)):
        for t in tensors:
            if t.dtype is None:
                if t.type:  # a sequence, optional or map (an undeclared type is not judged)
                    problems.append(
                        f"{role} '{t.name}' is {t.type}: a TFLite model takes and returns plain tensors only"
                    )
            elif t.dtype == "string":
                problems.append(
                    f"{role} '{t.name}' is a string tensor: edgebuild's TFLite I/O handles "
                    "numeric tensors only"
                )
            elif role == "input" and (not t.static or 0 in t.shape):
                problems.append(
                    f"input '{t.name}' has shape {list(t.shape or [])}: TFLite needs static, "
                    "non-empty shapes; set input_shapes"
                )
            elif role == "input" and not t.shape:
                problems.append(
                    f"input '{t.name}' is a scalar: TFLite makes it [1], which edgebuild's "
                    "TFLite I/O description does not bind yet"
                )
    return problems


def check(graph: WalkedGraph, settings: dict, rules: dict[str, list[dict]] | None = None) -> RouteResult:
    table = load_table(TABLE)
    result = RouteResult(table=f"{TABLE} + {MEASURED}: {table.source[0]}", predicted=True)
    result.issues += [Issue("error", problem) for problem in graph_problems(graph)]
    for n in graph.nodes:
        status, reason, certain = judge_node(n, rules)
        result.verdicts.append((n, status, reason))
        if not certain:
            result.advisory.add(n.index)
    return result

"""The onnxruntime (CPU) route: does every node find a kernel for its domain, version and types?

Kernels come from `recipes/coverage/onnxruntime-cpu-kernels.tsv`, generated from onnxruntime's own
registry. A node without a kernel is still fine when its op is defined as an ONNX function whose
body nodes all have kernels (onnxruntime inlines it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .function_expansion import expand_function_node
from .graph_walk import NodeInfo, WalkedGraph
from .partition import RESTRICTION, SUPPORTED, UNSUPPORTED
from .report import RouteResult
from .tables import load_table

TABLE = "onnxruntime-cpu-kernels.tsv"
RESTRICTIONS = "onnxruntime-restrictions.tsv"
MAX_EXPANSION_DEPTH = 4
# Ops onnxruntime resolves while loading the graph, without a kernel.
GRAPH_RESOLVED = {("", "Constant")}
# Optional-typed kernels also accept a plain tensor/sequence bound to the same constraint.
_OPTIONAL_PREFIX = "optional("


@dataclass(frozen=True)
class Kernel:
    start: int
    end: int
    types: dict


@lru_cache(maxsize=None)
def kernel_index() -> dict[tuple[str, str], list[Kernel]]:
    index: dict[tuple[str, str], list[Kernel]] = {}
    for row in load_table(TABLE).rows:
        domain = "" if row["domain"] == "ai.onnx" else row["domain"]
        types = {}
        for part in filter(None, row["type_constraints"].split(";")):
            name, _, allowed = part.partition("=")
            types[name] = frozenset(_split_types(allowed))
        index.setdefault((domain, row["op"]), []).append(
            Kernel(int(row["since_start"]), int(row["since_end"]), types)
        )
    return index


def _split_types(text: str) -> list[str]:
    """Split "tensor(float),seq(tensor(float)),map(int64,tensor(float))" at top-level commas."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


OPEN_END = 2**31 - 1


def _serves(kernel: Kernel, since: int, lenient: bool) -> bool:
    """onnxruntime's rule: an open-ended kernel serves only the exact since-version it was registered
    for; a versioned kernel serves every since-version in its range. Ops without an onnx schema
    (contrib domains) are matched on the imported opset, leniently."""
    if lenient:
        return kernel.start <= since <= kernel.end
    return kernel.start == since or (kernel.start < since and kernel.end != OPEN_END and since <= kernel.end)


@lru_cache(maxsize=None)
def attribute_rules() -> dict[str, list[dict]]:
    rules: dict[str, list[dict]] = {}
    for row in load_table(RESTRICTIONS).rows:
        rules.setdefault(row["op"], []).append(row)
    return rules


def _attribute_problem(node: NodeInfo) -> str | None:
    for rule in attribute_rules().get(node.op_type, []) if not node.domain else []:
        value = node.attrs.get(rule["attribute"])
        if value is not None and str(value) not in rule["allowed"].split(","):
            return f"{rule['attribute']} = {value}: {rule['reason']}"
    return None


def kernel_domains() -> set[str]:
    return {d for d, _ in kernel_index()}


def _formal_bindings(node: NodeInfo) -> list[tuple[str, str]] | None:
    """(type constraint name, actual type) for each typed input/output, from the ONNX schema."""
    import onnx.defs

    try:
        schema = onnx.defs.get_schema(node.op_type, node.opset, node.domain)
    except Exception:  # no schema (contrib op): types are not checked
        return None
    pairs: list[tuple[str, str]] = []
    for formals, actuals in ((schema.inputs, node.inputs), (schema.outputs, node.outputs)):
        for i, actual in enumerate(actuals):
            if not formals:
                break
            formal = formals[min(i, len(formals) - 1)]
            if i >= len(formals) and formal.option != onnx.defs.OpSchema.FormalParameterOption.Variadic:
                break
            if actual is not None and actual.type:
                pairs.append((formal.type_str, actual.type))
    return pairs


def _type_fits(actual: str, allowed: frozenset) -> bool:
    if actual in allowed:
        return True
    # onnxruntime binds optional(T) constraints to a plain T too (an optional that is present).
    return any(a.startswith(_OPTIONAL_PREFIX) and a[len(_OPTIONAL_PREFIX) : -1] == actual for a in allowed)


def check_node(node: NodeInfo, ir_version: int, depth: int = 0) -> tuple[str, str]:
    """(status, reason) of one node for onnxruntime's CPU provider."""
    if (node.domain, node.op_type) in GRAPH_RESOLVED:
        return SUPPORTED, ""
    kernels = kernel_index().get((node.domain, node.op_type))
    if node.domain and node.domain not in kernel_domains() and not kernels:
        return UNSUPPORTED, f"domain '{node.domain}' has no onnxruntime kernels (needs a custom-op library)"
    version = node.since_version if node.since_version is not None else node.opset
    if node.domain == "" and node.since_version is None:
        return UNSUPPORTED, f"{node.op_type} is not an ONNX op at opset {node.opset}"
    in_range = [
        k for k in kernels or [] if version is not None and _serves(k, version, node.since_version is None)
    ]
    if in_range:
        problem = _attribute_problem(node)
        if problem:
            return RESTRICTION, problem
        bindings = _formal_bindings(node)
        if bindings is None:
            return SUPPORTED, ""
        for k in in_range:
            if all(_type_fits(actual, k.types[c]) for c, actual in bindings if c in k.types):
                return SUPPORTED, ""
        # onnxruntime's CPU provider runs float16 nodes without a float16 kernel in float32, with casts
        widened = [(c, a.replace("float16", "float") if a == "tensor(float16)" else a) for c, a in bindings]
        for k in in_range:
            if all(_type_fits(actual, k.types[c]) for c, actual in widened if c in k.types):
                return SUPPORTED, "float16 computed in float32 (casts inserted by onnxruntime)"
        wanted = {c: a for c, a in bindings if any(c in k.types for k in in_range)}
        detail = ", ".join(f"{c}={a}" for c, a in sorted(wanted.items()))
        status, reason = RESTRICTION, f"no CPU kernel for types {detail}"
    elif kernels:
        spans = ", ".join(sorted({f"{k.start}-{k.end}" if k.end < 10**6 else f"{k.start}+" for k in kernels}))
        status, reason = UNSUPPORTED, f"no CPU kernel for version {version} (kernels cover {spans})"
    else:
        status, reason = UNSUPPORTED, f"no CPU kernel for {node.qualified_op}"
    if depth < MAX_EXPANSION_DEPTH:
        expanded = _check_expansion(node, ir_version, depth)
        if expanded is not None:
            return expanded
    return status, reason


def _check_expansion(node: NodeInfo, ir_version: int, depth: int) -> tuple[str, str] | None:
    try:
        body = expand_function_node(node, ir_version)
    except Exception:  # expansion is a best effort; the direct verdict stands
        return None
    if not body:
        return None
    for inner in body:
        status, reason = check_node(inner, ir_version, depth + 1)
        if status != SUPPORTED:
            return status, f"function body: {inner.op_type}: {reason}"
    return SUPPORTED, "expanded as an ONNX function"


def check_graph(graph: WalkedGraph, settings: dict) -> list[tuple[NodeInfo, str, str]]:
    return [(node, *check_node(node, graph.ir_version)) for node in graph.nodes]


def check(graph: WalkedGraph, settings: dict) -> RouteResult:
    return RouteResult(verdicts=check_graph(graph, settings), table=f"{TABLE}: {load_table(TABLE).source[0]}")

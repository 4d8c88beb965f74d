"""check_model: load an ONNX model once, hand it to the route's rules, and assemble the report."""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path
from typing import Any

from edgebuild.runtimes import builtin_runtimes, coverage_routes, coverage_rules

from .graph_walk import WalkedGraph, walk_model
from .report import CoverageReport, NodeResult, RouteResult

# The built-in runtimes' routes (a fixed list for tests and reports); check_model also accepts the
# routes of runtimes installed through the `edgebuild.runtimes` entry points.
ROUTES = tuple(coverage_routes(builtin_runtimes()))


class UnknownRouteError(ValueError):
    """A target names a coverage route that does not exist."""


def check_model(model_path: Path, route: str, settings: dict[str, Any] | None = None) -> CoverageReport:
    """Operator-coverage report of one ONNX model for one route, without converting anything.

    settings: `input_shapes` ({input: [dims]} fixing dynamic dims), `precision` ("fp32"/"fp16"/"int8"),
    `target` (name shown in the report), and route fields: tensorrt `tensorrt_version`, `int8`;
    edgetpu/tflite none needed. Raises ModelLoadError (graph_walk) for unreadable files or
    input_shapes that do not fit the model, UnknownRouteError for an unknown route.
    """
    settings = dict(settings or {})
    module = coverage_rules(route)
    if module is None:
        raise UnknownRouteError(
            f"unknown coverage route '{route}' (choose one of {', '.join(coverage_routes())})"
        )
    rules = importlib.import_module(module)
    graph = walk_model(Path(model_path), settings.get("input_shapes"), settings.get("source", "input_shapes"))
    return assemble_report(graph, route, rules.check(graph, settings), settings)


def assemble_report(
    graph: WalkedGraph, route: str, result: RouteResult, settings: dict[str, Any]
) -> CoverageReport:
    """The report of a route's result on a walked graph (also used with rule tables other than the
    shipped ones: the honesty benchmark's held-out folds)."""
    # A call of a model-local function is inlined by every route; its body nodes carry the verdicts.
    result.verdicts = [
        (node, "supported", "model-local function, inlined (body checked)")
        if graph.calls_local_function(node)
        else (node, status, reason)
        for node, status, reason in result.verdicts
    ]
    nodes = [
        NodeResult(
            node.where,
            node.qualified_op,
            status,
            reason,
            node.macs,
            result.predicted,
            counted=node.index not in result.uncounted and node.op_type != "Constant",
            certain=node.index not in result.advisory,
        )
        for node, status, reason in result.verdicts
    ]
    domains = Counter(n.domain for n in graph.nodes if n.domain)
    report = CoverageReport(
        route=route,
        model=str(graph.path),
        table=result.table,
        nodes=nodes,
        issues=list(result.issues),
        partition=result.partition,
        notes=list(graph.warnings) + list(result.notes),
        target=settings.get("target"),
        domains=dict(domains),
    )
    if graph.external_data:
        report.notes.append("weights are stored as external data and were not read")
    return report

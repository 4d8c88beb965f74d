"""`edgebuild check [--target NAME]`: what each target's accelerator will run and what falls back,
before any conversion. Runs only the recipes' coverage steps (and the preparation they need, all
cached), plus each step's configuration checks (device and precision mistakes: exit 2)."""
from __future__ import annotations

import json
import sys

from edgebuild.errors import ConfigError
from edgebuild.executor import LocalExecutor
from edgebuild.graph import Graph, TargetPlan
from edgebuild.progress import make_reporter
from edgebuild.scheduler import Scheduler
from edgebuild.session import build_session
from edgebuild.steps.base import Step

def coverage_subgraph(graph: Graph) -> Graph:
    """The nodes that produce a coverage report, and everything they depend on."""
    keep: set[str] = set()
    stack = [nid for nid, n in graph.nodes.items() if n.step_cls.reports_coverage]
    while stack:
        nid = stack.pop()
        if nid not in keep:
            keep.add(nid)
            stack.extend(graph.nodes[nid].deps)
    nodes = {nid: n for nid, n in graph.nodes.items() if nid in keep}
    plans = {name: TargetPlan(plan.resolved, [n for n in plan.nodes if n in keep], [])
             for name, plan in graph.targets.items()}
    return Graph(nodes=nodes, targets=plans)


def config_problems(graph: Graph) -> list[str]:
    problems = []
    io_cache: dict = {}
    for name, plan in graph.targets.items():
        model = plan.resolved.model
        for nid in plan.nodes:
            node = graph.nodes[nid]
            step = node.step_cls()
            if type(step).check_config is Step.check_config:
                continue        # the step has no configuration checks
            if model.name not in io_cache:
                io_cache[model.name] = _model_io(model)
            problems += [f"{name}: {p}" for p in step.check_config(node.params, io_cache[model.name])]
    return problems


def _model_io(model) -> dict:
    if model.is_folder:
        return {"inputs": [], "outputs": []}
    from edgebuild.onnxinfo import describe_io
    io = describe_io(model.source)
    for value in io["inputs"]:
        if value["name"] in model.input_shapes:
            value["shape"] = model.input_shapes[value["name"]]
    return io


def run(args) -> int:
    with build_session(args, args.targets) as session:
        problems = config_problems(session.graph)
        if problems:
            raise ConfigError("; ".join(problems))
        graph = coverage_subgraph(session.graph)
        sched = Scheduler(session.project.root, graph, session.cache, session.stats, LocalExecutor(args.jobs),
                          make_reporter(args.quiet or not args.verbose, args.verbose))
        sched.run()
    reports, failed = {}, False
    for name, plan in graph.targets.items():
        entry = None
        for nid in plan.nodes:
            outcome = sched.outcomes[nid]
            if graph.nodes[nid].step_cls.reports_coverage:
                entry = outcome
        if entry is None:
            reports[name] = {"status": "none", "summary": f"recipe '{plan.resolved.recipe.name}' has no coverage step"}
            continue
        data = (entry.entry or {}).get("metadata", {}).get("coverage")
        status = {"cached": "ok", "run": "ok"}.get(entry.status, entry.status)
        failed |= status in ("failed", "blocked")
        reports[name] = {"status": "policy-broken" if status == "failed" and data else status,
                         "summary": (data or {}).get("summary") or entry.message, "coverage": data}
    if args.json:
        print(json.dumps({"ok": not failed, "targets": reports}, indent=1))
    else:
        _render(reports)
    return 1 if failed else 0


def _render(reports: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=max(100, Console().width))
    styles = {"supported": "green", "cpu-fallback": "yellow", "restriction-violated": "red", "unsupported": "bold red"}
    for name, report in reports.items():
        data = report.get("coverage")
        if data and "rows" in data:
            table = Table(title=f"{name}: {data['route']}", title_justify="left")
            for column in ("op", "count", "status", "nodes / why"):
                table.add_column(column, justify="right" if column == "count" else "left")
            for row in data["rows"]:
                detail = ""
                if row["status"] != "supported":
                    detail = ", ".join(row["nodes"][:4]) + (" ..." if len(row["nodes"]) > 4 else "")
                    if row["reasons"]:
                        detail += "\n" + "; ".join(row["reasons"][:2])
                table.add_row(row["op"], str(row["count"]),
                              f"[{styles.get(row['status'], 'white')}]{row['status']}[/]", detail)
            console.print(table)
            for issue in data.get("issues", []):
                console.print(f"{issue['level']}: {issue['message']}", highlight=False, markup=False)
        mark = {"ok": "ok", "policy-broken": "POLICY BROKEN", "failed": "FAILED", "none": "-"}.get(report["status"],
                                                                                              report["status"])
        console.print(f"{mark:>13}  {report['summary']}", highlight=False, markup=False)

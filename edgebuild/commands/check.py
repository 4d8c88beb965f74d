"""`edgebuild check [--target NAME] [--convert]`: what each target's accelerator will run and what
falls back, before any conversion; `check MODEL.onnx --recipe NAME` asks the same of one model
without a project.

Runs only the recipes' coverage steps (and the preparation they need, all cached). Needs only the
model sources: a step that needs calibration or evaluation data the model lacks becomes a note on
its target (`needs calibration data`). Device and precision mistakes are that target's problem
(exit 1); the other targets are still checked. `--convert` also runs each target's real
conversion (the same cached steps `build` runs, so a later build reuses them; verification is left
out) and reports its verdict instead of the prediction."""

from __future__ import annotations

import json
import sys

import click

from edgebuild import cli_options as opt
from edgebuild.errors import ConfigError
from edgebuild.executors.local import LocalExecutor
from edgebuild.graph import Graph, TargetPlan
from edgebuild.progress import make_reporter
from edgebuild.build_result import Outcome
from edgebuild.collect import merge_metadata
from edgebuild.scheduler import Scheduler
from edgebuild.session import build_session
from edgebuild.steps.base import Step

FAILED = ("failed", "blocked", "policy-broken", "problem", "not-converted")


def _is_verification(node) -> bool:
    return node.step.endswith(".verify")


def check_subgraph(graph: Graph, convert: bool = False) -> Graph:
    """The nodes `check` runs: those producing a coverage report (with `convert`: every step but
    verification), and everything they depend on; never a node whose model lacks its data."""
    consumers = graph.consumers()
    excluded: set[str] = set()
    stack = [nid for nid, n in graph.nodes.items() if n.missing or (convert and _is_verification(n))]
    while stack:  # what cannot run here, and everything downstream of it
        nid = stack.pop()
        if nid not in excluded:
            excluded.add(nid)
            stack.extend(consumers[nid])
    seeds = [
        nid
        for nid, n in graph.nodes.items()
        if nid not in excluded and (convert or n.step_cls.reports_coverage)
    ]
    keep: set[str] = set()
    while seeds:
        nid = seeds.pop()
        if nid not in keep:
            keep.add(nid)
            seeds.extend(graph.nodes[nid].deps)
    nodes = {nid: n for nid, n in graph.nodes.items() if nid in keep}
    plans = {
        name: TargetPlan(plan.resolved, [n for n in plan.nodes if n in keep], [])
        for name, plan in graph.targets.items()
    }
    return Graph(nodes=nodes, targets=plans)


def config_problems(graph: Graph) -> dict[str, list[str]]:
    """Per target: device and precision mistakes its steps can see before anything runs."""
    problems: dict[str, list[str]] = {}
    io_cache: dict = {}
    for name, plan in graph.targets.items():
        model = plan.resolved.model
        for nid in plan.nodes:
            node = graph.nodes[nid]
            step = node.step_cls()
            if type(step).check_config is Step.check_config:
                continue  # the step has no configuration checks
            if model.name not in io_cache:
                io_cache[model.name] = _model_io(model)
            found = step.check_config(node.params, io_cache[model.name])
            if found:
                problems.setdefault(name, []).extend(found)
    return problems


def _model_io(model) -> dict:
    if model.is_folder:
        return {"inputs": [], "outputs": []}
    from edgebuild.onnxinfo import describe_io

    try:
        io = describe_io(model.source)
    except Exception:  # not readable as ONNX: the target's first step reports it, per target
        return {"inputs": [], "outputs": []}
    for value in io["inputs"]:
        if value["name"] in model.input_shapes:
            value["shape"] = model.input_shapes[value["name"]]
    return io


def data_notes(graph: Graph, name: str) -> list[str]:
    """`needs calibration data (step 'int8'): add ...` for each step of the target whose data is missing."""
    notes = []
    for nid in graph.targets[name].nodes:
        node = graph.nodes[nid]
        if node.missing:
            what, _, how = graph.needs_data_message(node).partition(": ")
            notes.append(f"{what} (step '{node.uses[name]}'): {how}")
    return notes


def check_targets(
    session, jobs: int, convert: bool = False, quiet: bool = True, verbose: bool = False
) -> dict:
    """Run the check on a build session's graph; one report per target (see module doc)."""
    full = session.graph
    problems = config_problems(full)
    graph = check_subgraph(full, convert)
    sched = Scheduler(
        session.project.root,
        graph,
        session.cache,
        session.stats,
        LocalExecutor(jobs),
        make_reporter(quiet or not verbose, verbose),
    )
    build = sched.run()
    return {
        name: _report(full, graph, build.outcomes, name, problems.get(name, []), convert)
        for name in full.targets
    }


def _report(
    full: Graph, graph: Graph, outcomes: dict[str, Outcome], name: str, problems: list[str], convert: bool
) -> dict:
    plan = graph.targets[name]
    notes = data_notes(full, name)
    coverage_nodes = [nid for nid in plan.nodes if graph.nodes[nid].step_cls.reports_coverage]
    report: dict = {"status": "ok", "recipe": plan.resolved.recipe.name, "summary": "", "coverage": None}
    if coverage_nodes:
        entry = outcomes[coverage_nodes[-1]]
        data = (entry.entry or {}).get("metadata", {}).get("coverage")
        status = {"cached": "ok", "run": "ok"}.get(entry.status, entry.status)
        report.update(
            status="policy-broken" if status == "failed" and data else status,
            summary=(data or {}).get("summary") or entry.message or "",
            coverage=data,
        )
    else:
        report.update(status="none", summary=f"recipe '{plan.resolved.recipe.name}' has no coverage step")
    if convert:
        report["conversion"] = _conversion(full, graph, outcomes, name, coverage_nodes)
        merged: dict = {}
        for nid in plan.nodes:
            if outcomes[nid].entry:
                merge_metadata(merged, outcomes[nid].entry.get("metadata", {}))
        if merged.get("coverage"):  # a measured report (a compiler's log) replaces the prediction
            report["coverage"] = merged["coverage"]
        if report["conversion"]["verdict"] in ("fails", "not run") and report["status"] in ("ok", "none"):
            report["status"] = "not-converted"
    if problems:
        report["status"] = "problem"
        report["problems"] = problems
    if notes:
        report["notes"] = notes
    return report


def _conversion(
    full: Graph, graph: Graph, outcomes: dict[str, Outcome], name: str, coverage_nodes: list[str]
) -> dict:
    """The real conversion's verdict for one target: converts | fails | not run | deferred | needs data."""
    steps = [nid for nid in graph.targets[name].nodes if nid not in coverage_nodes]
    for status, verdict in (("failed", "fails"), ("blocked", "not run"), ("deferred", "deferred")):
        for nid in steps:
            if outcomes[nid].status == status:
                return {
                    "verdict": verdict,
                    "step": graph.nodes[nid].uses[name],
                    "reason": outcomes[nid].message,
                }
    for nid in full.targets[name].nodes:  # a conversion step that cannot run without data
        node = full.nodes[nid]
        if node.missing and not _is_verification(node):
            return {"verdict": "needs data", "step": node.uses[name], "reason": full.needs_data_message(node)}
    return {
        "verdict": "converts",
        "step": graph.nodes[steps[-1]].uses[name] if steps else None,
        "reason": None,
    }


def run(args) -> int:
    project = None
    if args.model:
        from edgebuild.quick_project import quick_project

        project = quick_project(args.model, args.recipe, args.device, args.input_shape)
        if not args.json:
            for line in project.info.get("shape_notes", "").splitlines():
                print(line, file=sys.stderr)
    elif args.recipe or args.device or args.input_shape:
        raise ConfigError(
            "--recipe, --device and --input-shape go with a model: edgebuild check MODEL.onnx --recipe NAME"
        )
    with build_session(args, args.targets, project) as session:
        reports = check_targets(session, args.jobs, args.convert, args.quiet, args.verbose)
    failed = any(r["status"] in FAILED for r in reports.values())
    if args.json:
        print(json.dumps({"ok": not failed, "targets": reports}, indent=1))
    else:
        _render(reports)
    return 1 if failed else 0


def _render(reports: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=max(100, Console().width))
    styles = {
        "supported": "green",
        "cpu-fallback": "yellow",
        "restriction-violated": "red",
        "unsupported": "bold red",
    }
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
                # a predicted problem (advice from node-test rules) never stops the build: say so
                shown = f"{row['status']} (predicted)" if row.get("predicted") else row["status"]
                table.add_row(
                    row["op"],
                    str(row["count"]),
                    f"[{'yellow' if row.get('predicted') else styles.get(row['status'], 'white')}]{shown}[/]",
                    detail,
                )
            console.print(table)
            for issue in data.get("issues", []):
                console.print(f"{issue['level']}: {issue['message']}", highlight=False, markup=False)
        mark = {
            "ok": "ok",
            "policy-broken": "POLICY BROKEN",
            "failed": "FAILED",
            "none": "-",
            "problem": "PROBLEM",
            "not-converted": "NOT CONVERTED",
        }.get(report["status"], report["status"])
        console.print(f"{mark:>13}  {report['summary'] or name}", highlight=False, markup=False)
        for problem in report.get("problems", []):
            console.print(f"{'problem':>13}  {problem}", highlight=False, markup=False)
        conversion = report.get("conversion")
        if conversion:
            why = f" ({conversion['step']}: {conversion['reason']})" if conversion["reason"] else ""
            console.print(f"{'conversion':>13}  {conversion['verdict']}{why}", highlight=False, markup=False)
        for note in report.get("notes", []):
            console.print(f"{'note':>13}  {note}", highlight=False, markup=False)


@click.command("check")
@click.argument("model", required=False, metavar="[MODEL.onnx]")
@opt.targets
@opt.project
@opt.jobs
@opt.json_summary
@opt.verbose
@opt.quiet
@opt.remote_cache
@opt.trust_project_toolchains
@click.option("--recipe", metavar="NAME", help="with MODEL: the recipe to check against")
@click.option("--device", metavar="NAME", help="with MODEL: the recipe's device")
@click.option(
    "--input-shape",
    multiple=True,
    metavar="NAME=D,D,...",
    help="with MODEL: fix an input's shape (repeatable)",
)
@click.option(
    "--convert", is_flag=True, help="run the real conversion (cached, reused by build) and report its verdict"
)
def command(**params) -> int:
    return opt.call(run, params)

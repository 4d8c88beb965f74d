"""`edgebuild build [TARGET...]`, and the build session `all` and `bundle` share."""

from __future__ import annotations

import json
import sys

import click

from edgebuild import cli_options as opt
from edgebuild.collect import collect_targets
from edgebuild.executors import make_executor
from edgebuild.progress import make_reporter
from edgebuild.scheduler import Scheduler
from edgebuild.session import build_session
from edgebuild.state import save_result
from edgebuild.summary import exit_code, print_human, summary


def run(args) -> int:
    return run_build(args, args.targets, bundle=False)


def run_build(args, targets: list[str] | None, bundle: bool) -> int:
    with build_session(args, targets) as session:
        project, graph = session.project, session.graph
        executor = make_executor(args.executor, args.jobs, session.remote.url)
        sched = Scheduler(
            project.root,
            graph,
            session.cache,
            session.stats,
            executor,
            make_reporter(args.quiet, args.verbose),
        )
        if args.dry_run:
            from edgebuild.explain import dry_run

            rows = dry_run(sched)
            return _print_dry_run(rows, args.json)
        build = collect_targets(sched.run())
        results = build.targets
        if bundle:
            from edgebuild.bundling import bundle_targets

            bundle_targets(project, build, getattr(args, "bundle_version", None), args.quiet)
            if args.command == "all":
                from edgebuild.fleet.encode import parse_codecs
                from edgebuild.fleet.release import publish_release

                publish_release(
                    project, results, args.delta_from, args.max_ratio, parse_codecs(args.codecs), args.quiet
                )
    doc = summary(build)
    doc["ok"] = exit_code(doc, args.strict) == 0
    for name, data in doc["targets"].items():
        save_result(project.root, name, data)
    if args.json:
        print(json.dumps(doc, indent=1))
    elif not args.quiet:
        print_human(doc, sys.stderr)
    return exit_code(doc, args.strict)


def _print_dry_run(rows: list[dict], as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": True, "dry_run": True, "steps": rows}, indent=1))
        return 0
    for row in rows:
        if row["would_run"]:
            print(f"would run  {row['label']} ({row['step']}): {'; '.join(row['reasons'])}")
        else:
            print(f"cached     {row['label']} ({row['step']})")
    would = sum(r["would_run"] for r in rows)
    print(f"{would} of {len(rows)} steps would run")
    return 0


@click.command("build")
@click.argument("targets", nargs=-1, metavar="[TARGET]...", shell_complete=opt.complete_targets)
@opt.build_options
def command(**params) -> int:
    return opt.call(run, params)

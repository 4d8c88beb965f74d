"""`edgebuild cache stats|gc`."""

from __future__ import annotations

import json

import click

from edgebuild import cli_options as opt
from edgebuild.cache import LocalCache
from edgebuild.project import load_project
from edgebuild.state import TargetState


def run(args) -> int:
    project = load_project(args.project)
    cache = LocalCache.for_project(project.state_dir)
    if args.action == "stats":
        result = cache.stats()
    else:
        keep = {
            step["key"]
            for name in project.targets
            for step in TargetState.load(project.root, name).steps.values()
            if step.get("key")
        }
        result = cache.gc(keep, args.max_age)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            print(f"{key:16} {value}")
    return 0


@click.command("cache")
@click.argument("action", type=click.Choice(["stats", "gc"]))
@click.option(
    "--max-age",
    type=float,
    default=30.0,
    metavar="DAYS",
    help="gc: keep entries used within DAYS (default 30) or by the current project",
)
@opt.project
@opt.json_summary
@opt.verbose
def command(**params) -> int:
    return opt.call(run, params)

"""`edgebuild graph --format dot|mermaid|json`."""

from __future__ import annotations

import json

import click

from edgebuild import cli_options as opt
from edgebuild import graph as graphs
from edgebuild.hashing import StatCache
from edgebuild.project import load_project
from edgebuild.targets import resolve_all


def run(args) -> int:
    project = load_project(args.project)
    stats = StatCache(project.state_dir / "statcache.json")
    graph = graphs.build_graph(resolve_all(project), stats.digest, project.root)
    stats.save()
    if args.format == "json":
        print(json.dumps(graphs.to_json(graph), indent=1))
    else:
        print(graphs.to_dot(graph) if args.format == "dot" else graphs.to_mermaid(graph), end="")
    return 0


@click.command("graph")
@click.option("--format", type=click.Choice(["dot", "mermaid", "json"]), default="dot", help="default: dot")
@opt.project
@opt.verbose
def command(**params) -> int:
    return opt.call(run, params)

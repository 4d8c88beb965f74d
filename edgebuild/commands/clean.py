"""`edgebuild clean [--cache]`: remove build outputs (and the cache)."""

from __future__ import annotations

import shutil

import click

from edgebuild import cli_options as opt
from edgebuild.cache import LocalCache
from edgebuild.project import load_project


def run(args) -> int:
    project = load_project(args.project)
    removed = []
    for path in (
        project.build_dir,
        project.bundles_dir,
        project.state_dir / "state",
        project.state_dir / "logs",
    ):
        if path.exists():
            shutil.rmtree(path)
            removed.append(path)
    if args.cache:
        cache = LocalCache.for_project(project.state_dir)
        with cache.gc_lock(shared=False):
            for path in (cache.root, project.state_dir):
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
    if not args.quiet:
        for path in removed:
            print(f"removed {path}")
    return 0


@click.command("clean")
@click.option("--cache", is_flag=True, help="also remove .edgebuild/ (cache and state)")
@opt.project
@opt.verbose
@opt.quiet
def command(**params) -> int:
    return opt.call(run, params)

"""What the commands share on the command line: option sets as click decorators (each command
module stacks the ones that mean something for it), and `call`, which hands the parsed options to
the command's run(args) and turns edgebuild's errors into one line on stderr and their exit code."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace
from typing import Callable

import click


def complete_targets(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Target names from the project's targets.toml for shell completion; never an error (no
    validation: completion must answer at once, whatever state the project is in)."""
    import tomllib
    from pathlib import Path

    try:
        with open(Path(ctx.params.get("project") or ".") / "targets.toml", "rb") as file:
            names = tomllib.load(file).get("targets")
    except (OSError, ValueError):
        return []
    return [n for n in names if n.startswith(incomplete)] if isinstance(names, dict) else []


project = click.option("-C", "--project", default=".", metavar="DIR", help="project folder (default: .)")
jobs = click.option(
    "-j",
    "--jobs",
    type=int,
    default=os.cpu_count() or 1,
    metavar="N",
    help="steps to run at once (default: CPU count)",
)
json_summary = click.option("--json", is_flag=True, help="print one JSON summary on stdout")
strict = click.option("--strict", is_flag=True, help="treat deferred targets as failures")
verbose = click.option("-v", "--verbose", is_flag=True, help="more output; tracebacks on errors")
quiet = click.option("-q", "--quiet", is_flag=True, help="no progress output")
dry_run = click.option("-n", "--dry-run", is_flag=True, help="print what would run and why")
executor = click.option(
    "--executor",
    default="local",
    metavar="KIND",
    help="where steps run: local (worker processes, default), inline (this process, one at a "
    "time: for debugging steps) or dask://HOST:PORT (build agents of a Dask scheduler; "
    "needs --remote-cache)",
)
remote_cache = click.option(
    "--remote-cache",
    metavar="URL",
    help="shared HTTP cache (Bazel protocol: /ac/ and /cas/); overrides [cache] remote, '' turns it off",
)
trust_project_toolchains = click.option(
    "--trust-project-toolchains",
    is_flag=True,
    help="let this project's own recipes pip-install and run their [toolchain] (runs the project's code; also "
    "EDGEBUILD_TRUST_PROJECT_TOOLCHAINS=1)",
)
# argparse's append gave None when the option was absent, and commands read None as "every target"
targets = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME",
    shell_complete=complete_targets,
    callback=lambda ctx, param, value: list(value) or None,
    help="a target to work on (repeatable; default: every target)",
)
bundle_version = click.option(
    "--version", "bundle_version", metavar="SEMVER", help="bundle version (default: [project].version)"
)
max_ratio = click.option(
    "--max-ratio",
    type=float,
    default=0.6,
    metavar="R",
    help="refuse a delta larger than R times the full bundle (default 0.6)",
)
codecs = click.option(
    "--codecs",
    default="zstd,zlib,bsdiff4",
    metavar="LIST",
    help="codecs a device may need to apply the delta (default zstd,zlib,bsdiff4; 'zlib' alone "
    "needs nothing but Python on the device)",
)


def stack(*decorators: Callable) -> Callable:
    """Several option decorators as one, listed in --help in the order given."""

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


# what every command that builds shares: all, build, bundle
build_options = stack(
    project,
    jobs,
    json_summary,
    strict,
    verbose,
    quiet,
    dry_run,
    executor,
    remote_cache,
    trust_project_toolchains,
)


def namespace(command: str, params: dict) -> SimpleNamespace:
    """The args object run(args) reads: one attribute per option, repeatable ones as lists."""
    return SimpleNamespace(
        command=command, **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    )


def call(run: Callable[[SimpleNamespace], int], params: dict) -> int:
    """run(args) for the command being invoked; an EdgebuildError becomes `edgebuild: error: ...` on
    stderr and its exit code (2 for the user's mistakes), with a traceback only under -v."""
    from edgebuild.errors import EdgebuildError

    try:
        return run(namespace(click.get_current_context().info_name, params))
    except EdgebuildError as exc:
        if params.get("verbose"):
            import traceback

            traceback.print_exc()
        print(f"edgebuild: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgebuild: interrupted", file=sys.stderr)
        return 130

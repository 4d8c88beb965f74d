"""`edgebuild bundle --target NAME`: build that target if needed and emit its bundle."""

import click

from edgebuild import cli_options as opt
from edgebuild.commands.build import run_build
from edgebuild.errors import ConfigError


def run(args) -> int:
    if not args.targets:
        raise ConfigError("bundle needs --target NAME (repeatable); `edgebuild all` bundles every target")
    return run_build(args, args.targets, bundle=not args.dry_run)


@click.command("bundle")
@opt.targets
@opt.build_options
@opt.bundle_version
def command(**params) -> int:
    return opt.call(run, params)

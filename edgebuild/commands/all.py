"""`edgebuild all`: build every target and bundle it."""

import click

from edgebuild import cli_options as opt
from edgebuild.commands.build import run_build


def run(args) -> int:
    return run_build(args, None, bundle=not args.dry_run)


@click.command("all")
@opt.build_options
@opt.bundle_version
@opt.max_ratio
@opt.codecs
@click.option(
    "--delta-from",
    default="",
    metavar="VERSION[,VERSION]",
    help="also make delta bundles from these released versions (their bundles must be in the bundles folder)",
)
def command(**params) -> int:
    return opt.call(run, params)

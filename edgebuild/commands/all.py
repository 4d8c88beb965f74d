"""`edgebuild all`: build every target and bundle it."""
from edgebuild.commands.build import run_build


def run(args) -> int:
    return run_build(args, None, bundle=not args.dry_run)

"""`edgebuild delta OLD_BUNDLE NEW_BUNDLE`: a signed delta bundle from one release to the next."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgebuild import cli_options as opt
from edgebuild.errors import ConfigError


def run(args) -> int:
    from edgebuild.fleet.encode import parse_codecs
    from edgebuild.fleet.release import checked_delta

    for path in (args.old, args.new):
        if not Path(path).is_file():
            raise ConfigError(f"bundle not found: {path}")
    key = signing_key(Path(args.project), args.key, args.quiet)
    out_dir = Path(args.out) if args.out else Path(args.new).parent
    result = checked_delta(
        Path(args.old), Path(args.new), out_dir, key, args.max_ratio, parse_codecs(args.codecs)
    )
    if args.json:
        print(json.dumps({"ok": True, **result.as_dict()}, indent=1))
    elif not args.quiet:
        what = str(result.path) if result.path else "no delta written"
        print(
            f"{what}: {result.delta_bytes} bytes against {result.full_bytes} for the full bundle "
            f"({result.reason}); tensors {result.tensors}"
        )
    return 0


def signing_key(project_dir: Path, key_file: str | None, quiet: bool):
    """The release key: --key, else the project's (targets.toml [bundle].signing_key,
    EDGEBUILD_SIGNING_KEY, or its development key) as for bundles."""
    from edgebuild.bundle import BundleError, resolve_signing_key
    from edgebuild.bundle.keys import load_private_key

    try:
        if key_file:
            return load_private_key(Path(key_file))
        configured = None
        if (project_dir / "targets.toml").is_file():
            from edgebuild.project import load_project

            configured = load_project(project_dir).signing_key
        key, source = resolve_signing_key(project_dir, configured)
    except BundleError as exc:
        raise ConfigError(str(exc)) from None
    if not quiet and "development" in source:
        print(f"edgebuild: delta signed with {source}", file=sys.stderr)
    return key


@click.command("delta")
@click.argument("old", metavar="OLD_BUNDLE")
@click.argument("new", metavar="NEW_BUNDLE")
@click.option("--out", metavar="DIR", help="where to write it (default: NEW_BUNDLE's folder)")
@click.option(
    "--key", metavar="PRIVATE_KEY", help="signing key (PEM; default: the project's, as for bundles)"
)
@opt.max_ratio
@opt.codecs
@opt.project
@opt.json_summary
@opt.verbose
@opt.quiet
def command(**params) -> int:
    return opt.call(run, params)

"""`edgebuild keygen --out DIR`: an Ed25519 key pair for signing bundles."""

from __future__ import annotations

from pathlib import Path

import click

from edgebuild import cli_options as opt
from edgebuild.errors import ConfigError


def run(args) -> int:
    from edgebuild.bundle import BundleError, keygen

    try:
        private, public = keygen(Path(args.out))
    except BundleError as exc:
        raise ConfigError(str(exc)) from None
    if not args.quiet:
        print(f"private key: {private} (keep it secret; mode 0600)")
        print(f"public key:  {public} (give it to devices and to `edgebuild verify --key`)")
    return 0


@click.command("keygen")
@click.option("--out", required=True, metavar="DIR", help="folder for edgebuild.key and edgebuild.pub.pem")
@opt.verbose
@opt.quiet
def command(**params) -> int:
    return opt.call(run, params)

"""`edgebuild verify BUNDLE --key PUBLIC_KEY`: signature and every checksum; exit 1 with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgebuild import cli_options as opt
from edgebuild.errors import BuildFailed, ConfigError


def run(args) -> int:
    from edgebuild.bundle import BundleError, BundleInvalid, verify_bundle

    bundle = Path(args.bundle)
    if not bundle.exists():
        raise ConfigError(f"bundle not found: {bundle}")
    key = Path(args.key) if args.key else None
    if key is not None and not key.is_file():
        raise ConfigError(f"public key not found: {key}")
    try:
        manifest = verify_bundle(bundle, key)
    except BundleInvalid as exc:
        if args.json:
            print(json.dumps({"ok": False, "bundle": str(bundle), "reason": str(exc)}))
        raise BuildFailed(f"{bundle}: {exc}") from None
    except BundleError as exc:
        raise ConfigError(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "bundle": str(bundle),
                    "signature_checked": key is not None,
                    "target": manifest.get("target"),
                    "version": manifest.get("version"),
                }
            )
        )
    elif not args.quiet:
        what = "signature and checksums" if key else "checksums (no --key given: signature NOT checked)"
        print(f"{bundle}: OK ({what})")
    return 0


@click.command("verify")
@click.argument("bundle", metavar="BUNDLE")
@click.option("--key", metavar="PUBLIC_KEY", help="public key (PEM) to check the signature with")
@opt.json_summary
@opt.verbose
@opt.quiet
def command(**params) -> int:
    return opt.call(run, params)

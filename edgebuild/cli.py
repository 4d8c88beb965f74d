"""Command line: a thin layer over edgebuild's modules. Each command lives in edgebuild/commands/
and is imported only when used, so `edgebuild --help` stays fast."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from edgebuild import __version__

COMMANDS = {
    "all": "build every target and bundle it",
    "build": "build artifacts only (-n explains what would run and why)",
    "bundle": "build the named target(s) if needed and emit their bundles",
    "init": "write a commented targets.toml from one or more models",
    "check": "operator-coverage report per target, without converting",
    "graph": "print the step graph (dot, mermaid or json)",
    "verify": "check a bundle's signature and every checksum",
    "keygen": "make an Ed25519 signing key pair",
    "clean": "remove build/ and bundles/ (and with --cache the cache too)",
    "cache": "cache statistics and garbage collection",
    "toolchain": "list, install or locate isolated toolchain environments",
    "report": "write an HTML report of every target's last build",
    "agent": "run a build agent: a Dask worker advertising this host's devices",
    "delta": "make a signed delta bundle from an installed release to a new one",
    "split-plan": "where to cut a target with a split table between device and server (ranked table)",
}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-C", "--project", default=".", metavar="DIR", help="project folder (default: .)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="steps to run at once (default: CPU count)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    parser.add_argument("--strict", action="store_true", help="treat deferred targets as failures")
    parser.add_argument("-v", "--verbose", action="store_true", help="more output; tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgebuild", description="Build one trained model for many edge "
                                     "devices: cached, parallel, verified, signed.")
    parser.add_argument("--version", action="version", version=f"edgebuild {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        cmd = sub.add_parser(name, help=text, description=text)
        _common(cmd)
        if name in ("all", "build", "bundle"):
            cmd.add_argument("-n", "--dry-run", action="store_true", help="print what would run and why")
            cmd.add_argument("--executor", default="local", metavar="KIND",
                             help="where steps run: local (worker processes, default), inline (this "
                                  "process, one at a time: for debugging steps) or dask://HOST:PORT (build "
                                  "agents of a Dask scheduler; needs --remote-cache)")
        if name in ("all", "build", "bundle", "check", "init"):
            cmd.add_argument("--remote-cache", metavar="URL", help="shared HTTP cache (Bazel protocol: "
                             "/ac/ and /cas/); overrides [cache] remote, '' turns it off")
        if name in ("all", "build", "bundle", "check", "toolchain"):
            cmd.add_argument("--trust-project-toolchains", action="store_true",
                             help="let this project's own recipes pip-install and run their [toolchain] "
                                  "(runs the project's code; also EDGEBUILD_TRUST_PROJECT_TOOLCHAINS=1)")
        if name == "build":
            cmd.add_argument("targets", nargs="*", metavar="TARGET")
        if name in ("bundle", "check"):
            cmd.add_argument("--target", action="append", dest="targets", metavar="NAME")
        if name in ("all", "bundle"):
            cmd.add_argument("--version", dest="bundle_version", metavar="SEMVER",
                             help="bundle version (default: [project].version)")
        if name == "check":
            cmd.add_argument("model", nargs="?", metavar="MODEL.onnx",
                             help="check one model without a project (with --recipe)")
            cmd.add_argument("--recipe", metavar="NAME", help="with MODEL: the recipe to check against")
            cmd.add_argument("--device", metavar="NAME", help="with MODEL: the recipe's device")
            cmd.add_argument("--input-shape", action="append", default=[], metavar="NAME=D,D,...",
                             help="with MODEL: fix an input's shape (repeatable)")
            cmd.add_argument("--convert", action="store_true",
                             help="run the real conversion (cached, reused by build) and report its verdict")
        if name == "init":
            cmd.add_argument("models", nargs="+", metavar="MODEL",
                             help="an .onnx file or a Hugging Face model folder")
            cmd.add_argument("--device", action="append", default=[], dest="devices", metavar="NAME",
                             help="make targets for this device only (repeatable; default: one per recipe)")
        if name == "split-plan":
            cmd.add_argument("target", metavar="TARGET")
            cmd.add_argument("--all", action="store_true", help="show every candidate cut, not the best 15")
            cmd.add_argument("--out", metavar="DIR", help="also write both halves of the chosen cut, plan.json, "
                             "and check that server(device(x)) equals the model")
            cmd.add_argument("--link", metavar="NAME", help="with --out: the link whose chosen cut to write "
                             "(default: the first)")
            cmd.add_argument("--samples", type=int, default=32, metavar="N",
                             help="with --out: samples of the evaluation data to check (default 32)")
        if name == "graph":
            cmd.add_argument("--format", choices=["dot", "mermaid", "json"], default="dot")
        if name == "verify":
            cmd.add_argument("bundle", metavar="BUNDLE")
            cmd.add_argument("--key", metavar="PUBLIC_KEY", help="public key (PEM) to check the signature with")
        if name == "keygen":
            cmd.add_argument("--out", required=True, metavar="DIR")
        if name == "clean":
            cmd.add_argument("--cache", action="store_true", help="also remove .edgebuild/ (cache and state)")
        if name == "cache":
            cmd.add_argument("action", choices=["stats", "gc"])
            cmd.add_argument("--max-age", type=float, default=30.0, metavar="DAYS",
                             help="gc: keep entries used within DAYS (default 30) or by the current project")
        if name == "report":
            cmd.add_argument("--out", metavar="FILE", help="where to write it (default: build/report.html)")
        if name == "agent":
            cmd.add_argument("--scheduler", required=True, metavar="ADDRESS", help="dask scheduler, HOST:PORT")
            cmd.add_argument("--resources", default="", metavar="NAME=N,...",
                             help="resources to advertise, e.g. gpu-sm87=1 (steps that need them run here)")
            cmd.add_argument("--detect", action="store_true",
                             help="also advertise the GPUs (gpu-smXY) and TensorRT version found on this host")
            cmd.add_argument("--name", metavar="NAME", help="agent name shown in step logs (default: host-pid)")
        if name == "delta":
            cmd.add_argument("old", metavar="OLD_BUNDLE")
            cmd.add_argument("new", metavar="NEW_BUNDLE")
            cmd.add_argument("--out", metavar="DIR", help="where to write it (default: NEW_BUNDLE's folder)")
            cmd.add_argument("--key", metavar="PRIVATE_KEY",
                             help="signing key (PEM; default: the project's, as for bundles)")
        if name in ("delta", "all"):
            cmd.add_argument("--max-ratio", type=float, default=0.6, metavar="R",
                             help="refuse a delta larger than R times the full bundle (default 0.6)")
            cmd.add_argument("--codecs", default="zstd,zlib,bsdiff4", metavar="LIST",
                             help="codecs a device may need to apply the delta (default zstd,zlib,bsdiff4; "
                                  "'zlib' alone needs nothing but Python on the device)")
        if name == "all":
            cmd.add_argument("--delta-from", default="", metavar="VERSION[,VERSION]",
                             help="also make delta bundles from these released versions (their bundles must be "
                                  "in the bundles folder)")
        if name == "toolchain":
            cmd.add_argument("action", choices=["list", "install", "path"])
            cmd.add_argument("recipes", nargs="*", metavar="RECIPE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.command is None:
        make_parser().print_help()
        return 2
    from edgebuild.errors import EdgebuildError
    module = importlib.import_module(f"edgebuild.commands.{args.command.replace('-', '_')}")
    try:
        return module.run(args)
    except EdgebuildError as exc:
        if args.verbose:
            import traceback
            traceback.print_exc()
        print(f"edgebuild: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgebuild: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

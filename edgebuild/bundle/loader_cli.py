# ruff: noqa: F821  (reads the loader's globals: every command's function, BUNDLE_NAME, MANIFEST_TARGET)
# The loader's command line: `python loader.py verify|selftest|predict|install|promote|metrics|
# rollback|status`. Exit codes: 0 ok, 1 bundle rejected or self-test failed, 2 usage error or
# runtime unavailable.
#
# Copied verbatim into every generated loader.py (edgebuild/bundle/templates/_common.py.j2), last.
# Python 3.7, standard library only (numpy for selftest and predict).
import argparse
import sys
from pathlib import Path


def _parser():
    parser = argparse.ArgumentParser(prog="loader.py", description="Loader for bundle %s" % BUNDLE_NAME)
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("verify", help="check checksums (and the signature with --key)")
    p.add_argument("bundle", nargs="?", help="a .tar.gz bundle or an unpacked folder (default: this one)")
    p.add_argument("--key", help="Ed25519 public key (PEM)")
    p = sub.add_parser("selftest", help="verify, load the artifact and run the bundled reference input")
    p.add_argument("--key", help="Ed25519 public key (PEM)")
    p = sub.add_parser("predict", help="run the model on inputs from an .npz file")
    p.add_argument("--inputs", required=True, help=".npz with one array per model input")
    p.add_argument("--out", help="write outputs to this .npz (default: print a summary)")
    p.add_argument("--key", help="Ed25519 public key (PEM)")
    p = sub.add_parser("install", help="stage, verify, self-test and activate a bundle")
    p.add_argument("bundle")
    p.add_argument("--root", required=True, help="install folder (holds versions/, active, previous)")
    p.add_argument("--key", help="Ed25519 public key (PEM); required unless --unsigned-ok")
    p.add_argument(
        "--unsigned-ok", action="store_true", help="accept a bundle without checking its signature"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="allow a version lower than the active one or than any this root ever had",
    )
    p.add_argument(
        "--retarget",
        action="store_true",
        help="allow a bundle for another project, target or device than this root's",
    )
    p.add_argument(
        "--index",
        help="signed index.json (with index.json.sig beside it) that must list "
        "this bundle and must not have expired",
    )
    p.add_argument(
        "--canary",
        type=float,
        metavar="SHARE",
        help="install beside the active version as a candidate serving SHARE (0-1] of predictions",
    )
    p.add_argument(
        "--deployment",
        help="signed deployment.json (with .sig beside it) whose rollback thresholds the canary uses",
    )
    p = sub.add_parser("promote", help="make the canary candidate the active version")
    p.add_argument("--root", required=True)
    p = sub.add_parser("metrics", help="print the recorded telemetry in Prometheus' text format")
    p.add_argument("--root", required=True)
    p = sub.add_parser("rollback", help="make the previous version active again")
    p.add_argument("--root", required=True)
    p = sub.add_parser("status", help="show the active and previous versions")
    p.add_argument("--root", required=True)
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        if args.command == "verify":
            target = Path(args.bundle) if args.bundle else HERE
            if target.is_dir():
                manifest = verify_folder(target, args.key)
            elif target.is_file():
                manifest = verify_archive(target, args.key)
            else:
                print("error: no such bundle: %s" % target, file=sys.stderr)
                return 2
            print(
                "ok: %s-%s %s, %d files verified%s"
                % (
                    manifest["project"],
                    manifest["target"],
                    manifest["version"],
                    len(manifest["files"]),
                    ", signature verified with %s" % SIGNATURE_CHECKED_WITH
                    if args.key
                    else " (signature NOT checked: no --key)",
                )
            )
        elif args.command == "selftest":
            model = load(HERE, args.key)
            if args.key:
                print("signature verified with %s" % SIGNATURE_CHECKED_WITH)
            if model.manifest.get("status") == "deferred":
                print("note: this bundle is deferred: %s" % model.manifest.get("remaining"))
            passed, report = model.selftest()
            print("runtime: %s" % RUNTIME_USED)
            for line in report:
                print(line)
            print("self-test %s" % ("passed" if passed else "FAILED"))
            return 0 if passed else 1
        elif args.command == "predict":
            np = _numpy()
            with np.load(args.inputs, allow_pickle=False) as data:
                inputs = {key: data[key] for key in data.files}
            outputs = load(HERE, args.key).predict(inputs)
            if args.out:
                np.savez(args.out, **outputs)
            for name in sorted(outputs):
                value = np.asarray(outputs[name])
                print("%s: shape %s dtype %s" % (name, list(value.shape), value.dtype))
        elif args.command == "install":
            if args.key is None and not args.unsigned_ok:
                print(
                    "error: install needs --key PUB.pem (or --unsigned-ok to skip the signature)",
                    file=sys.stderr,
                )
                return 2
            if args.index is not None and args.key is None:
                print("error: --index needs --key PUB.pem to check the index's signature", file=sys.stderr)
                return 2
            if not Path(args.bundle).is_file():
                print("error: no such bundle: %s" % args.bundle, file=sys.stderr)
                return 2
            if args.canary is not None and not 0 < args.canary <= 1:
                print("error: --canary takes a share in (0, 1], e.g. 0.1", file=sys.stderr)
                return 2
            policy = (
                deployment_policy(args.deployment, args.key, MANIFEST_TARGET) if args.deployment else None
            )
            install(
                args.bundle,
                args.root,
                args.key,
                args.force,
                retarget=args.retarget,
                index=args.index,
                canary=args.canary,
                policy=policy,
            )
        elif args.command == "promote":
            promote(args.root)
        elif args.command == "metrics":
            sys.stdout.write(prometheus_metrics(args.root))
        elif args.command == "rollback":
            rollback(args.root)
        elif args.command == "status":
            root = Path(args.root)
            print("active: %s" % (_linked_version(root, "active") or "none"))
            print("previous: %s" % (_linked_version(root, "previous") or "none"))
            if _link_folder(root, "candidate"):
                print("candidate: %s" % _linked_version(root, "candidate"))
            record = _read_record(root) if root.is_dir() else None
            for line, version in sorted((record or {}).get("highest", {}).items()):
                print("highest installed: %s %s" % (line, version))
    except BundleRejected as exc:
        print("rejected: %s" % exc, file=sys.stderr)
        return 1
    except RuntimeUnavailable as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    return 0

"""`edgebuild delta OLD_BUNDLE NEW_BUNDLE`: a signed delta bundle from one release to the next."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from edgebuild.errors import BuildFailed, ConfigError


def run(args) -> int:
    from edgebuild.fleet.delta import make_delta

    for path in (args.old, args.new):
        if not Path(path).is_file():
            raise ConfigError(f"bundle not found: {path}")
    key = signing_key(Path(args.project), args.key, args.quiet)
    out_dir = Path(args.out) if args.out else Path(args.new).parent
    result = _made(make_delta, Path(args.old), Path(args.new), out_dir, key, args.max_ratio, _codecs(args.codecs))
    if args.json:
        print(json.dumps({"ok": True, **result.as_dict()}, indent=1))
    elif not args.quiet:
        what = str(result.path) if result.path else "no delta written"
        print(f"{what}: {result.delta_bytes} bytes against {result.full_bytes} for the full bundle "
              f"({result.reason}); tensors {result.tensors}")
    return 0


def _made(make, *params):
    from edgebuild.bundle import BundleError, BundleInvalid
    try:
        return make(*params)
    except BundleInvalid as exc:
        raise BuildFailed(f"cannot make a delta: {exc}") from None
    except BundleError as exc:
        raise ConfigError(str(exc)) from None


def _codecs(text: str) -> tuple[str, ...]:
    from edgebuild.fleet.encode import ALL_CODECS
    codecs = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in codecs if c not in ALL_CODECS]
    if unknown or not codecs:
        raise ConfigError(f"--codecs: unknown codec {', '.join(unknown) or '(none)'}; choose from {', '.join(ALL_CODECS)}")
    return codecs


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

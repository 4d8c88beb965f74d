# ruff: noqa: F821  (reads the loader's globals: verify_signature, BundleRejected, portable.py's names)
# Signed JSON documents the loader accepts beside a bundle (bundles/index.json, deployment.json),
# checked for their signature and expiry: freeze-attack protection.
#
# Copied verbatim into every generated loader.py (edgebuild/bundle/templates/_common.py.j2).
# Python 3.7, standard library only.
import json
from pathlib import Path


def read_signed_json(path, public_key, what, now=None):
    """A signed JSON document (PATH beside PATH.sig, e.g. index.json) whose signature verifies and
    whose `expires` time has not passed: the freeze-attack check. `what` names it in messages."""
    import calendar
    import time

    path = Path(path)
    signature_path = Path(str(path) + ".sig")
    try:
        with open(str(path), "rb") as handle:
            data = handle.read(MAX_SIGNED_FILE + 1)
        signature = signature_path.read_bytes()[:1024]
    except OSError as exc:
        raise BundleRejected("cannot read %s: %s" % (what, exc)) from None
    try:
        verify_signature(data, signature, public_key)
    except BundleRejected as exc:
        raise BundleRejected(
            str(exc).replace(MANIFEST_NAME, path.name).replace(SIGNATURE_NAME, signature_path.name)
        ) from None
    try:
        doc = json.loads(data.decode("utf-8"))
        expires = calendar.timegm(time.strptime(doc["expires"], "%Y-%m-%dT%H:%M:%SZ"))
    except (ValueError, KeyError, TypeError):
        raise BundleRejected(
            "%s has no valid 'expires' time (one from an older edgebuild: rebuild it)" % path.name
        ) from None
    if (time.time() if now is None else now) > expires:
        raise BundleRejected(
            "%s expired at %s: fetch a freshly signed one (an expired one may hide "
            "newer releases: freeze-attack protection)" % (path.name, doc["expires"])
        )
    return doc


def check_index(index, archive, public_key, now=None):
    """Check that a signed, unexpired index lists this exact archive; returns its entry."""
    index = Path(index)
    if public_key is None:
        raise BundleRejected("--index needs --key: an index is only worth its signature")
    entries = read_signed_json(index, public_key, "the index", now).get("bundles")
    if not isinstance(entries, list):
        raise BundleRejected("%s has no 'bundles' list" % index.name)
    with open(str(archive), "rb") as handle:
        sha, size = sha256_stream(handle)
    for entry in entries:
        if isinstance(entry, dict) and entry.get("sha256") == sha and entry.get("size") == size:
            return entry
    raise BundleRejected(
        "%s is not listed in %s (or differs from the bundle it lists)" % (Path(archive).name, index.name)
    )

"""Signed, versioned, reproducible bundles and their generated loaders.

Module map: spec (BundleSpec) -> writer (write_bundle: collect files, render loaders, manifest,
sign, archive) using keys, manifest, loaders (Jinja2 templates/), archive (deterministic tar.gz);
verify (verify_bundle, unpack_bundle) and index (update_index) read bundles back. The generated
loader.py is modules of this package pasted verbatim (loaders.render_loader): portable (archive
rules edgebuild shares), ed25519_verify, delta_apply, loader_verify, loader_model, loader_compare,
loader_update, fleet_runtime, loader_index, loader_cli and runtime_hooks/<runtime>."""

from edgebuild.bundle.errors import BundleError, BundleInvalid, VersionExists
from edgebuild.bundle.index import update_index
from edgebuild.bundle.keys import keygen, load_public_key, resolve_signing_key
from edgebuild.bundle.spec import BundleSpec
from edgebuild.bundle.verify import unpack_bundle, verify_bundle
from edgebuild.bundle.writer import bundle_path, write_bundle

__all__ = [
    "BundleSpec",
    "write_bundle",
    "bundle_path",
    "verify_bundle",
    "unpack_bundle",
    "keygen",
    "resolve_signing_key",
    "load_public_key",
    "update_index",
    "BundleError",
    "BundleInvalid",
    "VersionExists",
]

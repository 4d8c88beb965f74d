"""Rendering the files a bundle generates: loader.py (one Jinja2 template per runtime, which
pastes the package's loader modules verbatim with `source()` and fills in the bundle's
constants), README.md, and LoadModel.swift for Core ML bundles. Output depends only on the
arguments and the package's files, so bundles stay reproducible."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jinja2

from edgebuild.bundle.errors import BundleError
from edgebuild.bundle.spec import BundleSpec
from edgebuild.runtimes import UnknownRuntime, builtin_runtimes, get_runtime, runtimes

TEMPLATES = Path(__file__).parent / "templates"

# runtime name -> template file, for the built-in runtimes (each declares its own: edgebuild/runtimes/)
LOADER_TEMPLATES = {name: runtime.loader_template for name, runtime in builtin_runtimes().items()}


def _environment(first: Path | None = None) -> jinja2.Environment:
    # a third-party runtime's templates come first; edgebuild's (_common.py.j2, ...) after them
    folders = [str(first)] if first is not None and Path(first) != TEMPLATES else []
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([*folders, str(TEMPLATES)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def module_source(name: str) -> str:
    """The source text of an importable module (e.g. "edgebuild.bundle.loader_cli"), which a loader
    template pastes verbatim: the loader runs the very code the package imports and tests."""
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise BundleError(f"a loader template pastes module {name!r}, which has no Python source here")
    return Path(found.origin).read_text(encoding="utf-8")


def render_loader(spec: BundleSpec) -> str:
    try:
        runtime = get_runtime(spec.runtime)
    except UnknownRuntime:
        raise BundleError(
            f"no loader for runtime {spec.runtime!r} (known: {', '.join(runtimes())})"
        ) from None
    template_name = runtime.loader_template
    if not (Path(runtime.templates_dir) / template_name).is_file():
        raise BundleError(f"loader template {template_name} for runtime {spec.runtime!r} is not installed")
    return (
        _environment(runtime.templates_dir)
        .get_template(template_name)
        .render(
            bundle_name=spec.folder_name,
            runtime=spec.runtime,
            options_json=json.dumps(spec.runtime_options, sort_keys=True),
            manifest_project=spec.project,
            manifest_target=spec.target,
            manifest_version=spec.version,
            source=module_source,
        )
    )


def render_readme(spec: BundleSpec, files: list[str]) -> str:
    from edgebuild.bundle.manifest import loader_requirements

    return (
        _environment()
        .get_template("README.md.j2")
        .render(spec=spec, files=sorted(files), requirements=loader_requirements(spec))
    )


def render_swift(spec: BundleSpec) -> str:
    """A Swift snippet loading the Core ML artifact, shipped in coreml bundles as LoadModel.swift
    (the same generator as the coreml.inspect step's, image inputs included)."""
    from edgebuild.steps.coreml.swift_snippet import swift_snippet

    names = sorted(spec.artifacts)
    model = next((n for n in names if n.endswith((".mlpackage", ".mlmodel"))), names[0])
    return swift_snippet(
        spec.io,
        Path(model).stem,
        str(spec.runtime_options.get("compute_units", "ALL")),
        model_file=model,
        bundle_name=spec.folder_name,
    )

"""Descriptive metadata and edgebuild provenance written into the package spec."""

from __future__ import annotations


from edgebuild.steps.base import StepFailed

PREFIX = "edgebuild."


def edgebuild_version() -> str:
    try:
        from edgebuild import __version__

        return str(__version__)
    except ImportError:
        return "unknown"


def library_versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def apply_descriptions(mlmodel, described: dict) -> None:
    """author/license/version/short_description and per-input/output descriptions from parameters."""
    for key in ("author", "license", "version", "short_description"):
        if described.get(key):
            setattr(mlmodel, key, described[key])
    spec_io = {
        "input_descriptions": {f.name for f in mlmodel.get_spec().description.input},
        "output_descriptions": {f.name for f in mlmodel.get_spec().description.output},
    }
    for key, names in spec_io.items():
        target = mlmodel.input_description if key == "input_descriptions" else mlmodel.output_description
        for name, text in described.get(key, {}).items():
            if name not in names:
                raise StepFailed(
                    f"parameter '{key}' names '{name}', which is not one of {', '.join(sorted(names))}"
                )
            target[name] = text


def apply_provenance(mlmodel, provenance: dict[str, str]) -> None:
    for key, value in sorted(provenance.items()):
        mlmodel.user_defined_metadata[PREFIX + key] = str(value)

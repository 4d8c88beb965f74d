"""What Linux can learn from an `.mlpackage`: its spec, I/O and the MIL operations it contains."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgebuild.steps.base import StepFailed

from .package_files import spec_path

_ARRAY_DTYPES = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "DOUBLE": "float64",
    "INT32": "int32",
    "INT8": "int8",
}


def load_spec(package: Path):
    """The package's protobuf spec; StepFailed when the folder is not a loadable package."""
    from .mil_conversion import import_coremltools

    ct = import_coremltools()
    if not spec_path(package).is_file():
        raise StepFailed(
            f"{package.name}: not an .mlpackage (missing {spec_path(package).relative_to(package)})"
        )
    try:
        return ct.utils.load_spec(str(package))
    except Exception as exc:
        raise StepFailed(f"{package.name}: coremltools cannot load the package spec ({exc})") from None


def _feature(feature) -> dict[str, Any]:
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        dtype_name = type(array).ArrayDataType.Name(array.dataType)
        return {
            "name": feature.name,
            "shape": [int(d) for d in array.shape],
            "dtype": _ARRAY_DTYPES.get(dtype_name, dtype_name.lower()),
        }
    if kind == "imageType":
        image = feature.type.imageType
        space = type(image).ColorSpace.Name(image.colorSpace)
        channels = 1 if space == "GRAYSCALE" else 3
        return {
            "name": feature.name,
            "shape": [1, channels, int(image.height), int(image.width)],
            "dtype": "uint8",
            "layout": "NCHW",
            "image": {"color_space": space},
        }
    return {"name": feature.name, "shape": [], "dtype": kind or "unknown"}


def package_io(spec) -> dict[str, list[dict[str, Any]]]:
    return {
        "inputs": [_feature(f) for f in spec.description.input],
        "outputs": [_feature(f) for f in spec.description.output],
    }


def _walk_ops(operations, counts: Counter) -> None:
    for op in operations:
        counts[op.type] += 1
        for block in op.blocks:
            _walk_ops(block.operations, counts)


def mil_operations(spec) -> dict[str, Any]:
    """Counts of every MIL op in the main function (nested blocks included), plus spec facts."""
    if spec.WhichOneof("Type") != "mlProgram":
        raise StepFailed(f"package holds a {spec.WhichOneof('Type')} model, not an ML Program")
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    counts: Counter = Counter()
    _walk_ops(block.operations, counts)
    return {
        "spec_version": int(spec.specificationVersion),
        "opset": function.opset,
        "ops": dict(sorted(counts.items())),
        "total": sum(counts.values()),
    }


def user_metadata(spec) -> dict[str, str]:
    return dict(sorted(spec.description.metadata.userDefined.items()))

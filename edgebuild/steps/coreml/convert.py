"""coreml.convert: ONNX -> onnx2torch -> torch.jit.trace -> ML Program `.mlpackage`.

Outputs the package folder and the traced TorchScript module that was handed to coremltools
(`intermediate.pt`), so coreml.verify checks exactly what was converted. The conversion stops
when the onnx2torch module disagrees with onnxruntime on a probe input: some onnx2torch
converters are silently wrong (facts: CumSum), and a wrong package must not be produced.
"""

from __future__ import annotations

from typing import Any

from edgebuild.hashing import sha256_file
from edgebuild.steps.base import Step, StepContext, StepFailed

from . import options as option_parsing

# The onnx2torch module must match onnxruntime this closely on the probe input (fp32 math).
PROBE_ATOL = 1e-4
PROBE_RTOL = 1e-3
ROUTE_LIBRARIES = ("coremltools", "torch", "onnx2torch", "onnx", "onnxruntime", "numpy")


def image_preprocessing(options) -> dict[str, dict[str, Any]]:
    """Per-input {scale, bias, color_layout}: the loader and the self-test need it to feed pixels."""
    found = {}
    for name, image in options.image_inputs.items():
        found[name] = {"scale": image.scale, "bias": list(image.bias), "color_layout": image.color_layout}
    return found


def describe_io(prepared, spec, options) -> dict[str, list[dict[str, Any]]]:
    from .spec_reader import package_io

    io = package_io(spec)
    images = image_preprocessing(options)
    for onnx_info, feature in zip(prepared.inputs, io["inputs"]):
        feature["source_name"] = onnx_info.name
        feature["source_dtype"] = onnx_info.dtype
        preprocessing = images.get(onnx_info.name) or images.get("*")
        if preprocessing:
            feature["image"] = {**feature.get("image", {}), **preprocessing}
    for name, feature in zip(prepared.output_names, io["outputs"]):
        feature["source_name"] = name
    return io


class CoremlConvertStep(Step):
    name = "coreml.convert"
    version = "1"
    uses = ROUTE_LIBRARIES
    inputs = ("model",)
    outputs = ("model.mlpackage", "intermediate.pt")

    def run(self, ctx: StepContext) -> dict[str, Any]:
        options = option_parsing.convert_options(ctx.params)
        source = ctx.input("model")

        from edgebuild.metrics import deviation, within

        from . import metadata, mil_conversion, numerics, onnx_route, package_files, spec_reader

        prepared = onnx_route.prepare(source, options.input_shapes)
        module = onnx_route.to_torch(prepared)
        probe = onnx_route.example_inputs(prepared)
        reference = numerics.onnxruntime_outputs(source, probe)
        traced = onnx_route.trace(prepared, module, probe)
        produced = onnx_route.run_torch(prepared, traced, probe)
        if len(produced) != len(reference):
            raise StepFailed(
                f"{source.name}: the PyTorch intermediate has {len(produced)} outputs, the ONNX model {len(reference)}"
            )
        probe_errors = {}
        for name, ref, got in zip(prepared.output_names, reference, produced):
            probe_errors[name] = deviation(ref, got)
            if ref.shape != got.shape:
                raise StepFailed(
                    f"{source.name}: output '{name}' of the onnx2torch module has shape {list(got.shape)}, onnxruntime "
                    f"gives {list(ref.shape)}; the Core ML route would be silently wrong for this model"
                )
            if not within(ref, got, PROBE_ATOL, PROBE_RTOL * max(1.0, float(abs(ref).max(initial=0)))):
                raise StepFailed(
                    f"{source.name}: output '{name}' of the onnx2torch module differs from onnxruntime by "
                    f"{probe_errors[name]['max_abs']:.3g} (allowed {PROBE_ATOL:g}); the Core ML route would be "
                    "silently wrong for this model"
                )

        mlmodel = mil_conversion.convert(prepared, traced, options, reference)
        metadata.apply_descriptions(mlmodel, options.metadata)
        versions = metadata.library_versions(*ROUTE_LIBRARIES)
        metadata.apply_provenance(
            mlmodel,
            {
                "version": metadata.edgebuild_version(),
                "step": f"{self.name}/{self.version}",
                "source_sha256": sha256_file(source),
                "route": f"onnx2torch=={versions['onnx2torch']} -> torch.jit.trace (torch=={versions['torch']}) "
                f"-> coremltools=={versions['coremltools']} mlprogram",
                "precision": options.precision,
                "minimum_deployment_target": options.deployment_target,
                "compute_units": options.compute_units,
            },
        )

        package = ctx.output("model.mlpackage")
        package_files.save(mlmodel, package)
        import warnings

        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in favour of export
            torch.jit.save(traced, str(ctx.output("intermediate.pt")))

        spec = spec_reader.load_spec(package)
        ops = spec_reader.mil_operations(spec)
        return {
            "io": describe_io(prepared, spec, options),
            "metrics": {
                "package_bytes": sum(p.stat().st_size for p in package.rglob("*") if p.is_file()),
                "mil_ops": ops["total"],
                "probe_max_abs_error": max((e["max_abs"] for e in probe_errors.values()), default=0.0),
            },
            "coreml": {
                "precision": options.precision,
                "minimum_deployment_target": options.deployment_target,
                "compute_units": options.compute_units,
                "spec_version": ops["spec_version"],
                "opset": ops["opset"],
                "package_sha256": package_files.tree_digest(package),
                "route": "onnx2torch + torch.jit.trace + coremltools.convert(mlprogram)",
            },
            "toolchain": versions,
        }

"""coreml.compress: weight compression with coremltools.optimize.coreml (post-training, data-free).

compression = "none" copies the package, so a recipe can always take its deliverable from this
step. "int8": 8-bit linear symmetric per-channel weights; "palettize-N": N-bit k-means look-up
tables per tensor (scikit-learn, fixed seed inside coremltools); "int4-block": 4-bit linear per
block of 32 (iOS18/macOS15 packages only). Weights with fewer than `min_weight_elements`
elements stay as they are (coremltools' default threshold is 2048): compressing small tensors
saves little and costs accuracy.
"""

from __future__ import annotations

import re
import shutil
from typing import Any

from edgebuild.steps.base import Step, StepContext, StepFailed

from . import options as option_parsing

INT4_BLOCK_SIZE = 32
_NEEDS_IOS18 = {"int4-block", "palettize-3"}
_IOS18_OR_LATER = re.compile(
    r"^(iOS(1[89]|[2-9]\d)|macOS(1[5-9]|[2-9]\d)|watchOS(1[1-9]|[2-9]\d)|tvOS(1[89]|[2-9]\d))$"
)


def _config(cto, compression: str, threshold: int):
    if compression == "int8":
        op = cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=threshold
        )
    elif compression == "int4-block":
        op = cto.OpLinearQuantizerConfig(
            mode="linear_symmetric",
            dtype="int4",
            granularity="per_block",
            block_size=INT4_BLOCK_SIZE,
            weight_threshold=threshold,
        )
    else:
        op = cto.OpPalettizerConfig(
            mode="kmeans", nbits=int(compression.split("-")[1]), weight_threshold=threshold
        )
    return cto.OptimizationConfig(global_config=op)


def _package_bytes(package) -> int:
    return sum(p.stat().st_size for p in package.rglob("*") if p.is_file())


class CoremlCompressStep(Step):
    name = "coreml.compress"
    version = "1"
    uses = ("coremltools", "scikit-learn", "numpy")
    inputs = ("package",)
    outputs = ("model.mlpackage",)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        compression = option_parsing.compression(ctx.params)
        target = option_parsing.deployment_target(ctx.params)
        threshold = ctx.params.get("min_weight_elements", 2048)
        if not isinstance(threshold, int) or threshold < 1:
            raise StepFailed(f"parameter 'min_weight_elements' = {threshold!r}: expected a positive int")
        if compression in _NEEDS_IOS18 and not _IOS18_OR_LATER.match(target):
            raise StepFailed(
                f"parameter 'compression' = \"{compression}\" needs minimum_deployment_target iOS18/macOS15 "
                f"or later (target is {target})"
            )
        source = ctx.input("package")
        out = ctx.output("model.mlpackage")
        upstream = ctx.upstream.get("package", {})
        before = _package_bytes(source)

        from . import metadata, package_files, spec_reader
        from .mil_conversion import import_coremltools

        if compression == "none":
            shutil.copytree(source, out)
        else:
            ct = import_coremltools()
            import coremltools.optimize.coreml as cto

            mlmodel = ct.models.MLModel(str(source), skip_model_load=True)
            try:
                if compression.startswith("palettize"):
                    compressed = cto.palettize_weights(mlmodel, _config(cto, compression, threshold))
                else:
                    compressed = cto.linear_quantize_weights(mlmodel, _config(cto, compression, threshold))
            except Exception as exc:
                raise StepFailed(
                    f"parameter 'compression' = \"{compression}\": coremltools.optimize failed ({str(exc).splitlines()[0]})"
                ) from None
            metadata.apply_provenance(
                compressed,
                {
                    "compression": compression,
                    "compression_min_weight_elements": threshold,
                },
            )
            package_files.save(compressed, out)

        spec = spec_reader.load_spec(out)
        ops = spec_reader.mil_operations(spec)
        after = _package_bytes(out)
        io = upstream.get("io") or spec_reader.package_io(spec)
        return {
            "io": io,
            "metrics": {
                **upstream.get("metrics", {}),
                "package_bytes": after,
                "uncompressed_bytes": before,
                "compression_ratio": round(before / after, 3) if after else None,
                "mil_ops": ops["total"],
            },
            "coreml": {
                **upstream.get("coreml", {}),
                "compression": compression,
                "package_sha256": package_files.tree_digest(out),
            },
            "toolchain": upstream.get("toolchain", {}),
        }

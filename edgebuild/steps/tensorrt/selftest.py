"""tensorrt.selftest: the bundle's reference input and expected output (selftest.npz).

Expected outputs come from onnxruntime on the prepared FP32 network; the tolerance suits the
target's precision and is never tighter than what the lowered (FP16/INT8) network itself shows
under onnxruntime, since TensorRT's kernels deviate from FP32 at least as much."""

from __future__ import annotations

from typing import Any

from edgebuild.npzfile import save_npz
from edgebuild.steps.base import Step, StepContext
from edgebuild.steps.tensorrt import agreement, calibration_data, model_io
from edgebuild.steps.tensorrt import profiles as profile_rules

# precision -> (atol as a share of the largest expected magnitude, rtol, lowest cosine allowed)
TOLERANCES = {"fp32": (1e-3, 1e-3, 0.9999), "fp16": (2e-2, 1e-2, 0.999), "int8": (1e-1, 5e-2, 0.98)}
MARGIN = 4.0  # the device may deviate this many times more than the onnxruntime simulation


def reference_feed(inputs: list[dict], arrays: dict | None, profiles: list[dict]) -> dict:
    """Rows of calibration data shaped for the engine (profile `opt` batch for dynamic inputs),
    or a seeded synthetic input when the data does not fit or does not exist."""
    feed = calibration_data.synthetic_feed(inputs, profiles)
    if arrays is None:
        return feed
    for spec in inputs:
        shape, array = feed[spec["name"]].shape, arrays.get(spec["name"])
        if array is None or array.shape[1:] != shape[1:] or array.shape[0] < shape[0]:
            return calibration_data.synthetic_feed(inputs, profiles)
        feed[spec["name"]] = array[: shape[0]].astype(spec["dtype"])
    return feed


class TensorrtSelftestStep(Step):
    name = "tensorrt.selftest"
    version = "2"
    uses = ("onnx", "onnxruntime", "numpy")
    inputs = ("model", "lowered", "calibration?")
    outputs = ("selftest.npz",)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import numpy as np
        import onnx

        precision = ctx.params.get("precision", "fp32")
        model = onnx.load(str(ctx.input("model")), load_external_data=False)
        inputs = model_io.describe_io(model)["inputs"]
        profiles = profile_rules.normalize(ctx.params.get("profiles"))
        arrays = calibration_data.load(ctx.input("calibration")) if "calibration" in ctx.inputs else None
        feed = reference_feed(inputs, arrays, profiles)

        reference = agreement.session(ctx.input("model"))
        names = [out.name for out in reference.get_outputs()]
        expected = dict(zip(names, reference.run(names, feed)))
        observed = agreement.compare(ctx.input("model"), ctx.input("lowered"), [feed])

        share, rtol, cosine = TOLERANCES[precision]
        scale = (
            max(
                (float(np.max(np.abs(v), initial=0.0)) for v in expected.values() if v.dtype.kind == "f"),
                default=1.0,
            )
            or 1.0
        )
        atol = max(share * scale, MARGIN * observed["max_abs_error"])
        min_cosine = min(cosine, 1.0 - MARGIN * (1.0 - observed["min_cosine"]))
        arrays_out = {f"input.{k}": v for k, v in feed.items()}
        arrays_out.update({f"expected.{k}": v for k, v in expected.items()})
        arrays_out.update(atol=np.array(atol), rtol=np.array(rtol), min_cosine=np.array(min_cosine))
        save_npz(ctx.output("selftest.npz"), arrays_out)  # deterministic bytes: bundles must reproduce
        return {
            "selftest": {
                "atol": atol,
                "rtol": rtol,
                "min_cosine": min_cosine,
                "precision": precision,
                "onnxruntime_lowered_max_abs_error": observed["max_abs_error"],
                "onnxruntime_lowered_cosine": observed["min_cosine"],
            }
        }

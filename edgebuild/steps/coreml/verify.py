"""coreml.verify: numerics of the Core ML route, checked where they can be.

On every host: the traced PyTorch module that coremltools converted (`intermediate.pt`) against
onnxruntime on the evaluation set (max/mean error, cosine, top-1 agreement, accuracy against
labels), gated by atol/rtol. On macOS: the package itself through the Core ML runtime, gated by
the self-test tolerances for its precision and compression. Writes `selftest.npz` for the bundle.
With `require_package_run = true` a non-macOS host raises Deferred after doing the rest.
"""

from __future__ import annotations

from typing import Any

from edgebuild.steps.base import Deferred, Step, StepContext, StepFailed

from . import options as option_parsing

PACKAGE_BATCHES = 32  # evaluation batches run through the package itself on macOS


def _float_param(params: dict, key: str, default: float) -> float:
    value = params.get(key, default)
    if not isinstance(value, (int, float)) or value < 0:
        raise StepFailed(f"parameter '{key}' = {value!r}: expected a non-negative number")
    return float(value)


class _Tally:
    """Running error figures for one output across the evaluation batches."""

    def __init__(self):
        self.max_abs = 0.0
        self.abs_sum = 0.0
        self.count = 0
        self.min_cosine = 1.0
        self.worst_batch = 0

    def add(self, index: int, reference, candidate) -> None:
        import numpy as np

        from edgebuild.metrics import deviation

        err = deviation(reference, candidate)
        if err["max_abs"] > self.max_abs:
            self.max_abs, self.worst_batch = err["max_abs"], index
        self.abs_sum += float(
            np.abs(np.asarray(reference, np.float64) - np.asarray(candidate, np.float64)).sum()
        )
        self.count += int(np.asarray(reference).size)
        self.min_cosine = min(self.min_cosine, err["cosine"])

    def summary(self) -> dict[str, float]:
        return {
            "max_abs_error": self.max_abs,
            "mean_abs_error": self.abs_sum / max(self.count, 1),
            "min_cosine": self.min_cosine,
        }


def _top1(values):
    import numpy as np

    flat = np.asarray(values).reshape(np.asarray(values).shape[0], -1)
    return flat.argmax(axis=1)


class CoremlVerifyStep(Step):
    name = "coreml.verify"
    version = "2"
    uses = ("coremltools", "torch", "onnx", "onnxruntime", "numpy")
    inputs = ("model", "intermediate", "package", "evaluation?")
    outputs = ("selftest.npz",)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        shapes = option_parsing.input_shapes(ctx.params)
        precision = option_parsing.choice(ctx.params, "precision", option_parsing.PRECISIONS, "fp16")
        compression = option_parsing.compression(ctx.params)
        compute_units = option_parsing.compute_units(ctx.params)
        atol = _float_param(ctx.params, "atol", 1e-4)
        rtol = _float_param(ctx.params, "rtol", 1e-3)
        max_samples = int(ctx.params.get("max_samples", 256))
        package_batches = int(ctx.params.get("package_batches", PACKAGE_BATCHES))
        source = ctx.input("model")

        from . import evaluation_set, macos_runtime, numerics, onnx_route

        prepared = onnx_route.prepare(source, shapes)
        if ctx.inputs.get("evaluation") is not None:
            batches, labels = evaluation_set.load(ctx.inputs["evaluation"], prepared.inputs, max_samples)
            data_note = ctx.inputs["evaluation"].name
        else:
            batches, labels = [onnx_route.example_inputs(prepared, seed) for seed in range(8)], None
            data_note = "8 random inputs (the model has no evaluation set)"
        reference = numerics.OnnxRuntimeReference(source)
        figures = self._compare_intermediate(ctx, prepared, reference, batches, labels, atol, rtol)
        figures["data"] = data_note

        images = _image_preprocessing(ctx)
        tolerance = self._write_selftest(ctx, prepared, reference, batches[0], images, precision, compression)
        reason = macos_runtime.unavailable_reason()
        figures["package_run"] = reason is None
        if reason is None:
            figures["package"] = self._run_package(
                ctx, prepared, reference, batches[:package_batches], images, compute_units, tolerance
            )
        else:
            figures["package_run_reason"] = (
                reason + "; compared the traced PyTorch intermediate with onnxruntime"
            )

        result = {
            "metrics": {"verification": figures},
            "selftest": {k: float(v) for k, v in tolerance.items()},
        }
        if reason is not None and ctx.params.get("require_package_run", False):
            deferred = Deferred(f"running the Core ML package needs a macOS host: {reason}")
            deferred.metadata = result
            raise deferred
        return result

    def _compare_intermediate(self, ctx, prepared, reference, batches, labels, atol, rtol) -> dict[str, Any]:
        """The traced module coremltools converted against onnxruntime, batch by batch; StepFailed past atol/rtol."""
        import warnings

        import numpy as np
        import torch

        from edgebuild.metrics import deviation, within

        from . import onnx_route

        try:
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", DeprecationWarning
                )  # torch.jit is deprecated in favour of export
                intermediate = torch.jit.load(str(ctx.input("intermediate")))
        except Exception as exc:
            raise StepFailed(
                f"{ctx.input('intermediate').name}: cannot load the traced intermediate ({exc})"
            ) from None
        tallies = {name: _Tally() for name in prepared.output_names}
        top1_ref, top1_torch = [], []
        for index, feeds in enumerate(batches):
            expected = reference.run(feeds)
            produced = onnx_route.run_torch(prepared, intermediate, feeds)
            for name, ref, got in zip(prepared.output_names, expected, produced):
                tallies[name].add(index, ref, got)
                if not within(ref, got, atol, rtol):
                    err = deviation(ref, got)
                    raise StepFailed(
                        f"output '{name}': the traced PyTorch intermediate differs from onnxruntime by "
                        f"{err['max_abs']:.3g} on evaluation batch {index} (atol {atol:g}, rtol {rtol:g})"
                    )
            top1_ref.append(_top1(expected[0]))
            top1_torch.append(_top1(produced[0]))
        top1_ref, top1_torch = np.concatenate(top1_ref), np.concatenate(top1_torch)
        figures: dict[str, Any] = {
            "samples": int(len(top1_ref)),
            "outputs": {name: t.summary() for name, t in tallies.items()},
            "top1_agreement": float((top1_ref == top1_torch).mean()),
        }
        if labels is not None and len(labels) == len(top1_ref):
            figures["accuracy_onnxruntime"] = float((top1_ref == labels).mean())
            figures["accuracy_intermediate"] = float((top1_torch == labels).mean())
        return figures

    def _run_package(
        self, ctx, prepared, reference, batches, images, compute_units, tolerance
    ) -> dict[str, Any]:
        """macOS only: the package itself on the first batches, gated by the self-test tolerances."""
        from edgebuild.metrics import deviation, within

        from . import macos_runtime

        worst: dict[str, dict[str, float]] = {}
        for index, batch in enumerate(batches):
            package_feeds, model_feeds = _feeds(prepared, batch, images)
            expected = dict(zip(prepared.output_names, reference.run(model_feeds)))
            got = macos_runtime.predict(
                ctx.input("package"),
                compute_units,
                _package_names(ctx, package_feeds),
                _package_names(ctx, images),
            )
            for name, want in _package_names(ctx, expected).items():
                if name not in got:
                    raise StepFailed(f"the Core ML package has no output '{name}'")
                err = deviation(want, got[name])
                if name not in worst or err["max_abs"] > worst[name]["max_abs"]:
                    worst[name] = err
                if err["cosine"] < tolerance["min_cosine"] or not within(
                    want, got[name], tolerance["atol"], tolerance["rtol"]
                ):
                    raise StepFailed(
                        f"output '{name}': the Core ML package differs from onnxruntime by {err['max_abs']:.3g} on batch "
                        f"{index} (cosine {err['cosine']:.5f}; allowed atol {tolerance['atol']:.3g}, "
                        f"min cosine {tolerance['min_cosine']})"
                    )
        return {"batches": len(batches), "outputs": worst}

    def _write_selftest(
        self, ctx, prepared, reference, batch, images, precision, compression
    ) -> dict[str, float]:
        """selftest.npz from the first evaluation batch, named as the package names its inputs and outputs."""
        import numpy as np

        from . import selftest_file

        package_feeds, model_feeds = _feeds(prepared, batch, images)
        expected = dict(zip(prepared.output_names, reference.run(model_feeds)))
        scale = max(float(np.abs(v).max(initial=0.0)) for v in expected.values())
        tolerance = selftest_file.tolerances(precision, compression, scale)
        selftest_file.write(
            ctx.output("selftest.npz"),
            _package_names(ctx, package_feeds),
            _package_names(ctx, expected),
            tolerance,
        )
        return tolerance


def _image_preprocessing(ctx) -> dict[str, dict]:
    """Source input name -> {scale, bias, color_layout} for inputs the package takes as images."""
    io = ctx.upstream.get("package", {}).get("io", {})
    return {
        f.get("source_name", f["name"]): f["image"]
        for f in io.get("inputs", [])
        if "scale" in (f.get("image") or {})
    }


def _package_names(ctx, values: dict) -> dict:
    """Re-key by the package's names (coremltools replaces characters that are not identifiers)."""
    io = ctx.upstream.get("package", {}).get("io", {})
    names = {f.get("source_name", f["name"]): f["name"] for f in io.get("inputs", []) + io.get("outputs", [])}
    return {names.get(k, k): v for k, v in values.items()}


def _feeds(prepared, batch: dict, images: dict) -> tuple[dict, dict]:
    """(what the package is fed, what onnxruntime is fed): image inputs become 0..255 pixels, and the
    reference sees exactly the values the package's scale/bias turns those pixels into."""
    from . import selftest_file

    package_feeds, model_feeds = {}, {}
    for info in prepared.inputs:
        value = batch[info.name]
        if info.name in images:
            package_feeds[info.name] = selftest_file.image_pixels(value, images[info.name])
            value = selftest_file.pixels_to_input(package_feeds[info.name], images[info.name], value.dtype)
        else:
            package_feeds[info.name] = value
        model_feeds[info.name] = value
    return package_feeds, model_feeds

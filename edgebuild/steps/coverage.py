"""coverage.check: the operator-coverage gate a recipe runs before its expensive steps."""

from __future__ import annotations

from typing import Any

from .base import Step, StepContext, StepFailed

POLICY_KEYS = ("fallback", "min_accelerated_share")


class CoverageCheckStep(Step):
    """Check the input ONNX model for one route; fail with the summary line when the policy is broken.

    params: route ("onnxruntime" | "tensorrt" | "edgetpu" | "tflite" | "coreml"), fallback
    ("error" | "warn"), min_accelerated_share (0..1 or absent), and anything check_model reads:
    input_shapes, precision, target, tensorrt_version, int8. Writes coverage.json.
    """

    name = "coverage.check"
    version = "2"
    uses = ("onnx",)
    inputs = ("model",)
    outputs = ("coverage.json",)
    reports_coverage = True

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import json

        from edgebuild.coverage import (
            ModelLoadError,
            PolicyError,
            UnknownRouteError,
            check_model,
            evaluate_policy,
        )

        params = dict(ctx.params)
        route = params.pop("route", None)
        if not route:
            raise StepFailed("coverage.check: parameter 'route' is required")
        policy = {k: params.pop(k) for k in POLICY_KEYS if k in params}
        params = {k: v for k, v in params.items() if v is not None}
        try:
            report = check_model(ctx.input("model"), route, params)
            problems = evaluate_policy(report, policy)
        except (ModelLoadError, UnknownRouteError, PolicyError) as exc:
            raise StepFailed(str(exc)) from None
        data = report.to_json()
        data["model"] = ctx.input(
            "model"
        ).name  # never an absolute path: reports go into reproducible bundles
        data["policy"] = {
            "fallback": policy.get("fallback", "warn"),
            "min_accelerated_share": policy.get("min_accelerated_share"),
            "violations": problems,
        }
        ctx.output("coverage.json").write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        for line in [report.summary_line()] + [f"{i.level}: {i.message}" for i in report.issues]:
            ctx.log.info(line)
        if problems:
            error = StepFailed(f"{report.summary_line()} | policy: " + "; ".join(problems))
            error.metadata = {"coverage": data}  # `edgebuild check` still shows the table
            raise error
        return {"coverage": data}


STEPS = {"coverage.check": CoverageCheckStep}

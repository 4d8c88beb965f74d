"""Verification of an onnxruntime artifact against its fp32 source, on every output."""

from __future__ import annotations

import os
import resource

from edgebuild.steps.base import Step, StepContext, StepFailed


class OrtVerifyStep(Step):
    """Run the fp32 source and the artifact on the evaluation data (else the calibration data, else
    generated inputs); record per-output agreement (cosine, relative error), top-1 agreement,
    accuracy against labels where there are labels, latency interleaved with the fp32 artifact
    (`baseline`) and the size and latency ratios to it; fail when a gate is missed, naming the worst
    output; write the bundle's self-test (reference input and expected output).

    params: precision (gate defaults for "auto"); gates {max_accuracy_drop, max_class_drop,
    min_cosine, min_output_cosine, max_output_rel_error, min_top1_agreement}; threads; eval_samples
    (stratified sample size); latency_runs; latency_budget_s; atol/rtol for the self-test.
    """

    name = "ort.verify"
    version = "4"
    uses = ("onnx", "onnxruntime", "numpy")
    inputs = ("reference", "model", "evaluation?", "calibration?", "baseline?")
    fallback_inputs = {"calibration": "evaluation"}
    outputs = ("selftest.npz",)

    def required_inputs(self, params: dict) -> set[str]:
        from edgebuild.errors import ConfigError
        from edgebuild.metrics import bad_gates

        problems = bad_gates(params.get("gates"))
        if problems:  # found while planning: a configuration mistake (exit 2)
            raise ConfigError("; ".join(problems))
        return super().required_inputs(params)

    def run(self, ctx: StepContext) -> dict:
        import numpy as np

        from edgebuild.evaldata import batches, feed_rows, sample_rows, stratified_sample, verification_data
        from edgebuild.metrics import (
            check_gates,
            compare,
            compare_outputs,
            interleaved_latency,
            resolve_gates,
        )
        from edgebuild.npzfile import save_npz
        from edgebuild.onnxinfo import describe_io
        from edgebuild.steps.ort.runtime import session

        p = ctx.params
        threads = int(p.get("threads", 1))
        int8 = ((ctx.upstream.get("model") or {}).get("metrics") or {}).get("int8", {})
        precision = "fp32" if int8.get("shipped") == "fp32" else p.get("precision", "fp32")
        gates = resolve_gates(dict(p.get("gates", {})), precision)
        gates.pop("max_latency_ratio", None)  # applied where the int8 model is chosen (ort.quantize)
        reference = session(ctx.input("reference"), threads, what="the source model")
        artifact = session(ctx.input("model"), threads, what="the artifact")
        io = describe_io(ctx.input("model"))
        specs = io["inputs"]
        names = [v["name"] for v in specs]
        arrays, labels, data_note = verification_data(
            {k: ctx.inputs.get(k) for k in ("evaluation", "calibration")}, specs, p, count=64
        )
        limit = int(p.get("eval_samples", 0)) or None
        if labels is not None and limit:
            keep = stratified_sample(labels, limit)
            arrays = {k: v[keep] for k, v in arrays.items()}
            labels = arrays["labels"]
        out_names = [o.name for o in artifact.get_outputs()]
        pairs = []
        for feed in batches(arrays, names, feed_rows(specs)):
            try:
                pairs.append((reference.run(None, feed), artifact.run(None, feed), len(feed[names[0]])))
            except Exception as exc:
                raise StepFailed(
                    f"running on {data_note.split(' (')[0]} failed: {str(exc).splitlines()[0]}"
                ) from None
        try:
            figures = compare(
                np.concatenate([r[0] for r, _, _ in pairs]),
                np.concatenate([a[0] for _, a, _ in pairs]),
                labels,
            )
        except ValueError:  # the first output's shape varies per batch: per-output figures only
            figures = {}
        figures["outputs"] = compare_outputs(pairs, out_names)
        figures["data"] = data_note
        sample = next(batches(arrays, names, sample_rows(specs)))
        runners = {"artifact": lambda: artifact.run(None, sample)}
        baseline_path = ctx.inputs.get("baseline")
        if baseline_path is not None:
            fp32 = session(baseline_path, threads, what="the fp32 artifact")
            runners["fp32"] = lambda: fp32.run(None, sample)
        timing = interleaved_latency(
            runners, runs=int(p.get("latency_runs", 100)), budget_s=float(p.get("latency_budget_s", 30.0))
        )
        figures["latency"] = dict(timing["artifact"], threads=threads, batch=int(len(sample[names[0]])))
        figures["size_bytes"] = os.path.getsize(ctx.input("model"))
        figures["size_ratio_to_source"] = figures["size_bytes"] / os.path.getsize(ctx.input("reference"))
        if baseline_path is not None:
            base = timing["fp32"]
            figures["latency"].update(
                fp32_p50_ms=base["p50_ms"],
                ratio_to_fp32=figures["latency"]["p50_ms"] / base["p50_ms"],
                interleaved_with="fp32 artifact",
            )
            figures["size_ratio_to_fp32"] = figures["size_bytes"] / os.path.getsize(baseline_path)
        # peak resident memory of this verification process (source and artifact sessions and the
        # evaluation data together): an upper bound for the artifact alone
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        expected = artifact.run(None, sample)
        tolerance = float(p.get("selftest_atol", 1e-3))
        save_npz(
            ctx.output("selftest.npz"),
            {
                **{f"input.{k}": v for k, v in sample.items()},
                **{f"expected.{n}": v for n, v in zip(out_names, expected)},
                "atol": np.array(tolerance),
                "rtol": np.array(float(p.get("selftest_rtol", 1e-3))),
            },
        )
        misses = check_gates(figures, gates)
        if misses:
            diagnosis = int8.get("diagnosis")
            if diagnosis:
                from edgebuild.int8_diagnosis import explain

                misses.append(explain(diagnosis, "onnxruntime"))
            error = StepFailed(f"accuracy gate missed on {data_note.split(' (')[0]}: " + "; ".join(misses))
            error.metadata = {"metrics": figures}
            raise error
        return {"metrics": figures}

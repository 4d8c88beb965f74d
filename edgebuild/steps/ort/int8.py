"""The int8 onnxruntime artifact: quantized with the configuration the search picks (search.py),
timed against the fp32 artifact of the same model, and held to `max_latency_ratio`: a slower int8
model fails the target, or with on_slower = "fp32" the fp32 model ships instead and the summary,
manifest and report say so."""

from __future__ import annotations

import os
import shutil

from edgebuild.errors import ConfigError
from edgebuild.metrics import bad_gates
from edgebuild.steps.base import Step, StepContext, StepFailed

AUTO = "auto"


def unknown_op_types(names) -> list[str]:
    """Problems with op type names that are not ONNX ops (case matters: 'conv' is not 'Conv')."""
    if not names:
        return []
    import onnx

    from edgebuild.project import did_you_mean

    known = {schema.name for schema in onnx.defs.get_all_schemas_with_history()}
    problems = []
    for name in names:
        if not isinstance(name, str) or name not in known:
            exact = [k for k in known if isinstance(name, str) and k.lower() == name.lower()]
            hint = f" (did you mean '{exact[0]}'?)" if exact else did_you_mean(str(name), known)
            problems.append(f"exclude_op_types: '{name}' is not an ONNX op type{hint}")
    return problems


def _precision(params: dict) -> str:
    """int8 (static, calibrated) or int8-dynamic; the old spelling int8_mode = "dynamic" still works."""
    if params.get("precision") == "int8-dynamic" or params.get("mode") == "dynamic":
        return "int8-dynamic"
    return "int8"


class OrtQuantizeStep(Step):
    """int8 with onnxruntime.quantization, chosen by measurement against the fp32 artifact.

    params: precision (int8 | int8-dynamic; `mode` = dynamic is the old spelling); int8_search;
    int8_accuracy_fallback (when no searched candidate passes the gates, keep the nodes around the
    worst-quantized activations in float, a few per round: fallback.py);
    activation_type / per_channel / calibrate_method ("auto": searched, or the device default);
    weight_type; calibration_samples; exclude_nodes; exclude_op_types; reduce_range;
    symmetric_activations; arch (device class: x86-64 | arm64 | host); threads; latency_runs;
    latency_budget_s; search_margin; gates (the verification gates, plus max_latency_ratio);
    on_slower (fail | fp32). Inputs: model, calibration (static), baseline (the fp32 artifact: the
    search and the latency gate need it), evaluation (agreement data for the search).
    """

    name = "ort.quantize"
    version = "6"
    uses = ("onnx", "onnxruntime", "numpy")
    inputs = ("model", "calibration?", "baseline?", "evaluation?")
    outputs = ("model.onnx",)

    def required_inputs(self, params: dict) -> set[str]:
        problems = unknown_op_types(params.get("exclude_op_types")) + bad_gates(params.get("gates"))
        if problems:  # found while planning: a configuration mistake (exit 2), not a failed build
            raise ConfigError("; ".join(problems))
        return {"model"} if _precision(params) == "int8-dynamic" else {"model", "calibration"}

    def check_config(self, params: dict, model_io: dict) -> list[str]:
        return unknown_op_types(params.get("exclude_op_types"))

    def run(self, ctx: StepContext) -> dict:
        from edgebuild.metrics import resolve_gates
        from edgebuild.steps.ort.runtime import host_arch

        p = ctx.params
        precision = _precision(p)
        dynamic = precision == "int8-dynamic"
        gates = resolve_gates(dict(p.get("gates", {})), precision)
        max_ratio = gates.pop("max_latency_ratio", None)
        max_ratio = (
            None if max_ratio is None or isinstance(max_ratio, bool) or max_ratio <= 0 else float(max_ratio)
        )
        on_slower = p.get("on_slower", "fail")
        if on_slower not in ("fail", "fp32"):
            raise StepFailed(f"on_slower '{on_slower}' is not one of fail, fp32")
        arch = p.get("arch", "host")
        arch = host_arch() if arch in ("host", "", None) else arch
        options, vary, defaults_note = self._options(p, dynamic, arch)
        if (
            arch != host_arch()
        ):  # this host cannot time the device's kernels: its defaults, no search, no gate
            defaults_note = (
                f"device is {arch}, this build host is {host_arch()}: the device's defaults are used "
                f"without a search; latency is measured here for information only, not gated"
            )
            ctx.params = p = dict(p, int8_search=False)
            max_ratio = None
        work = ctx.out / "work"
        try:
            return self._build(
                ctx,
                options,
                vary,
                defaults_note,
                gates,
                max_ratio,
                on_slower,
                work,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _options(p: dict, dynamic: bool, arch: str):
        from edgebuild.steps.ort.quantize import Int8Options

        # onnxruntime's x86-64 kernels run QLinearConv with uint8 activations (u8s8, VNNI); with int8
        # activations most convolutions stay float between Q/DQ pairs. arm64 kernels take int8.
        device_activation = "int8" if arch == "arm64" else "uint8"
        chosen = {k: p.get(k, AUTO) for k in ("activation_type", "per_channel", "calibrate_method")}
        vary = {k: v == AUTO for k, v in chosen.items()}
        vary["per_channel"] = chosen["per_channel"] in (True, AUTO)  # true allows per-tensor where faster
        options = Int8Options(
            mode="dynamic" if dynamic else "static",
            activation_type=device_activation if vary["activation_type"] else chosen["activation_type"],
            weight_type=p.get("weight_type", "int8"),
            per_channel=True if vary["per_channel"] else bool(chosen["per_channel"]),
            calibrate_method="minmax" if vary["calibrate_method"] else chosen["calibrate_method"],
            exclude_op_types=tuple(p.get("exclude_op_types", [])),
            exclude_nodes=tuple(p.get("exclude_nodes", [])),
            reduce_range=bool(p.get("reduce_range", False)),
            symmetric_activations=bool(p.get("symmetric_activations", False)),
        )
        note = (
            f"device default for {arch}: {device_activation} activations" if vary["activation_type"] else None
        )
        return options, vary, note

    def _build(
        self,
        ctx,
        options,
        vary,
        defaults_note,
        gates,
        max_ratio,
        on_slower,
        work,
    ) -> dict:
        from edgebuild.evaldata import batches, load_npz, sample_rows, verification_data
        from edgebuild.onnxinfo import describe_io
        from edgebuild.int8_diagnosis import explain
        from edgebuild.steps.ort.diagnosis import activation_probe
        from edgebuild.steps.ort.quantize import CalibrationReader, prepare, quantize
        from edgebuild.steps.ort.runtime import describe, smoke_run
        from edgebuild.steps.ort.search import Bench, Candidate, best_agreeing, measure, search

        p = ctx.params
        precision = _precision(p)
        prepared, prep = prepare(ctx.input("model"), work, options.per_channel, ctx.log)
        if not prep["per_channel_possible"]:
            options = options.but(per_channel=False)
            vary = dict(vary, per_channel=False)
        io = describe_io(prepared)
        specs = io["inputs"]
        names = [v["name"] for v in specs]
        rows = sample_rows(specs)
        calibration = None
        if options.mode == "static":
            if "calibration" not in ctx.inputs:
                raise StepFailed(
                    "static int8 quantization needs calibration data: set `calibration` on the model"
                )
            calibration = load_npz(ctx.input("calibration"), names, "calibration", specs=specs)

        def reader(cap: int | None = None):
            limit = int(p.get("calibration_samples", 128))
            return CalibrationReader(calibration, names, rows, min(limit, cap) if cap else limit)

        baseline = ctx.inputs.get("baseline")
        int8_info = {"precision": precision, "search": False, "shipped": "int8"}
        if prep.get("note"):
            int8_info["opset"] = prep["note"]
        if defaults_note:
            int8_info["defaults"] = defaults_note
        search_figures: dict = {}
        if baseline is None:  # no fp32 artifact to compare with: one call, no latency gate
            winner = Candidate(options, work / "candidate.onnx")
            quantize(prepared, winner.path, options, reader, work)
            tried = [winner]
            reason = "single configuration (no fp32 artifact to measure against)"
        else:
            arrays, labels, data_note = verification_data(
                {k: ctx.inputs.get(k) for k in ("evaluation", "calibration")}, specs, p
            )
            feeds = list(batches(arrays, names, rows, int(p.get("search_samples", 64))))
            if labels is not None:
                labels = labels[: sum(len(next(iter(f.values()))) for f in feeds)]
            bench = Bench(
                baseline,
                feeds,
                labels,
                gates,
                int(p.get("threads", 1)),
                int(p.get("latency_runs", 100)),
                float(p.get("latency_budget_s", 30.0)),
            )
            search_figures["data"] = data_note
            if p.get("int8_search", True) and options.mode == "static":
                winner, tried, reason, fallback = search(
                    options,
                    vary,
                    prepared,
                    work,
                    baseline,
                    bench,
                    reader,
                    float(p.get("search_margin", 0.05)),
                    ctx.log,
                    accuracy_fallback=p.get("accuracy_fallback", True),
                    max_ratio=max_ratio,
                )
                int8_info["search"] = True
                if fallback is not None:
                    # which nodes went back to float and why (reproducible: no timings) in the
                    # manifest; every round's candidate figures in the summary
                    int8_info["accuracy_fallback"] = {
                        "result": fallback.get("result"),
                        "budget_nodes": fallback["budget_nodes"],
                        "rounds": [
                            {k: r[k] for k in ("round", "failing_outputs", "causes", "excluded_nodes")}
                            for r in fallback["rounds"]
                        ],
                    }
                    search_figures["accuracy_fallback"] = fallback
            else:
                winner = Candidate(options, work / "candidate.onnx")
                quantize(prepared, winner.path, options, reader, work)
                tried = [winner]
                measure(tried, bench)
                reason = (
                    "single configuration (int8_search = false)"
                    if options.mode == "static"
                    else "dynamic quantization (no search)"
                )
            if winner is None:  # nothing passes the gates: ship the best-agreeing one; verification fails it
                winner = best_agreeing(tried)
                if winner is None:
                    raise StepFailed(
                        "; ".join(c.error for c in tried if c.error) or "no int8 candidate could be built"
                    )
                reason = "no candidate passes the gates: the best-agreeing one goes to verification"
                max_ratio = (
                    None  # verification fails it on agreement, which names the output: the real problem
                )
            elif winner.error:
                raise StepFailed(winner.error)
            if options.mode == "static" and winner.figures.get("misses"):
                # verification will fail it: say whether the weights or the activations lose it
                int8_info["diagnosis"] = activation_probe(
                    winner, prepared, bench, reader, work, "accuracy_fallback" in int8_info
                )
                ctx.log.warning("%s", explain(int8_info["diagnosis"], "onnxruntime"))
            search_figures.update(
                candidates=[c.record() for c in tried],
                chosen=tried.index(winner),
                threads=bench.threads,
                fp32_size_bytes=os.path.getsize(baseline),
            )
        int8_info.update(options=winner.options.as_dict(), chosen=winner.options.label(), reason=reason)

        out = ctx.output("model.onnx")
        ratio = winner.ratio
        if max_ratio is not None and ratio is not None and ratio > max_ratio:
            figures = winner.figures
            rounds = len(figures.get("ratios_measured", [1]))
            message = (
                f"int8 is slower than fp32: p50 {figures['p50_ms']:.4f} ms vs {figures['fp32_p50_ms']:.4f} "
                f"ms (x{ratio:.2f}{f' over {rounds} timing rounds' if rounds > 1 else ''}, interleaved, "
                f"{search_figures['threads']} thread(s), {winner.options.label()}) breaks gate "
                f"max_latency_ratio = {max_ratio:g}"
            )
            if on_slower != "fp32":
                error = StepFailed(
                    message + '; set on_slower = "fp32" to ship the fp32 model instead, or '
                    "max_latency_ratio = false to ship int8 anyway"
                )
                error.metadata = {"metrics": {"int8": int8_info, "int8_search": search_figures}}
                raise error
            shutil.copyfile(baseline, out)
            int8_info.update(
                shipped="fp32",
                shipped_reason=f"int8 slower than fp32 (max_latency_ratio {max_ratio:g}, on_slower = fp32)",
            )
            search_figures["shipped_note"] = message + '; the fp32 model ships instead (on_slower = "fp32")'
            ctx.log.warning("%s", search_figures["shipped_note"])
            smoke_run(out, what=f"the fp32 artifact shipped as {out.name}")
        else:
            shutil.copyfile(winner.path, out)
            smoke_run(out, what=f"the int8 artifact ({winner.options.label()})")
        result = describe(out)
        result["metrics"] = {"int8": int8_info}
        if search_figures:
            result["metrics"]["int8_search"] = search_figures
        return result

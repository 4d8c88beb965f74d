"""Which int8 configuration ships, chosen by measurement on the build host.

Every candidate is checked against the gates on the agreement data and timed interleaved with the
fp32 artifact (so a ratio to fp32 is trustworthy even on a busy machine). The search is small and
greedy: the device default, then the other activation type, then per-tensor weights, then the
winner with the op types kept in float that onnxruntime's profiler shows slower in int8 than in
fp32 or with depthwise convolutions kept in float (onnxruntime's x86 QLinearConv is slow on them),
and other calibration methods only when nothing passes the gates. A candidate beats an
earlier one only when it is faster by more than `margin`, so near-ties keep the default and two
builds on one host choose alike.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgebuild.steps.base import StepFailed
from edgebuild.steps.ort.quantize import QUANTIZABLE_OP_TYPES, Int8Options, depthwise_convs, quantize


@dataclass
class Candidate:
    options: Int8Options
    path: Path
    session: object = None
    figures: dict = field(default_factory=dict)  # p50_ms, ratio_to_fp32, worst output, misses
    error: str | None = None
    outputs: dict = field(
        default_factory=dict
    )  # every output's agreement figures (for the fallback's ranking)

    @property
    def passes(self) -> bool:
        return self.error is None and not self.figures.get("misses")

    @property
    def ratio(self) -> float | None:
        return self.figures.get("ratio_to_fp32")

    def record(self) -> dict:
        data = {"options": self.options.label(), **{k: v for k, v in self.figures.items() if k != "misses"}}
        if self.figures.get("misses"):
            data["misses"] = self.figures["misses"]
        if self.error:
            data["error"] = self.error
        return data


class Bench:
    """The fp32 artifact, the agreement data and its fp32 outputs, and interleaved timing."""

    def __init__(
        self, baseline: Path, feeds: list[dict], labels, gates: dict, threads: int, runs: int, budget_s: float
    ) -> None:
        from edgebuild.steps.ort.runtime import session

        self.threads, self.runs, self.budget_s, self.gates, self.labels = (
            threads,
            runs,
            budget_s,
            gates,
            labels,
        )
        self.fp32 = session(baseline, threads, what="the fp32 artifact")
        self.feeds = feeds
        self.names = [o.name for o in self.fp32.get_outputs()]
        self.reference = [self.fp32.run(None, feed) for feed in feeds]

    def agreement(self, sess) -> tuple[dict, list[str]]:
        """Per-output figures against fp32 and the gate misses."""
        import numpy as np

        from edgebuild.metrics import check_gates, compare, compare_outputs

        outputs = [sess.run(None, feed) for feed in self.feeds]
        batch = len(next(iter(self.feeds[0].values())))
        figures = {}
        try:
            figures = compare(
                np.concatenate([r[0] for r in self.reference]),
                np.concatenate([o[0] for o in outputs]),
                self.labels,
            )
        except ValueError:  # outputs whose shape varies per batch: per-output figures only
            pass
        figures["outputs"] = compare_outputs(
            [(r, o, batch) for r, o in zip(self.reference, outputs)], self.names
        )
        return figures, check_gates(figures, self.gates)

    def time(self, sessions: dict) -> dict[str, dict]:
        from edgebuild.metrics import interleaved_latency

        feed = self.feeds[0]
        runners = {"fp32": lambda: self.fp32.run(None, feed)}
        runners.update({name: (lambda s=s: s.run(None, feed)) for name, s in sessions.items()})
        return interleaved_latency(runners, runs=self.runs, budget_s=self.budget_s)


def measure(candidates: list[Candidate], bench: Bench) -> None:
    """Agreement for the new candidates, then one interleaved timing of all of them with fp32."""
    from edgebuild.steps.ort.runtime import session

    live = {}
    for i, cand in enumerate(candidates):
        if cand.error:
            continue
        try:
            cand.session = cand.session or session(
                cand.path, bench.threads, what=f"the int8 candidate ({cand.options.label()})"
            )
            figures, misses = bench.agreement(cand.session)
        except StepFailed as exc:
            cand.error = str(exc)
            continue
        cand.outputs = figures["outputs"]
        worst = min(figures["outputs"].items(), key=lambda kv: kv[1]["cosine_mean"])
        cand.figures.update(
            worst_output=worst[0],
            worst_output_cosine=round(worst[1]["cosine_mean"], 6),
            size_bytes=os.path.getsize(cand.path),
            misses=misses,
        )
        live[str(i)] = cand.session
    if not live:
        return
    timing = bench.time(live)
    base = timing["fp32"]["p50_ms"]
    for key, figures in timing.items():
        if key == "fp32":
            continue
        cand = candidates[int(key)]
        # a candidate timed in two rounds (the winner against a challenger) keeps both ratios and is
        # judged by their geometric mean: one noisy round should not decide alone
        ratios = cand.figures.get("ratios_measured", []) + [round(figures["p50_ms"] / base, 4)]
        cand.figures.update(
            p50_ms=round(figures["p50_ms"], 5),
            fp32_p50_ms=round(base, 5),
            runs=figures["runs"],
            ratios_measured=ratios,
            ratio_to_fp32=round(math.prod(ratios) ** (1 / len(ratios)), 4),
        )


def best_agreeing(candidates: list[Candidate], tie: float = 0.005) -> Candidate | None:
    """The candidate whose worst output agrees best with fp32; near-ties (within `tie` of cosine)
    go to the faster one."""
    usable = [c for c in candidates if c.error is None and c.figures.get("worst_output_cosine") is not None]
    if not usable:
        return None
    top = max(c.figures["worst_output_cosine"] for c in usable)
    close = [c for c in usable if c.figures["worst_output_cosine"] >= top - tie]
    return min(close, key=lambda c: c.ratio if c.ratio is not None else float("inf"))


def pick(candidates: list[Candidate], margin: float) -> Candidate | None:
    """The earliest passing candidate within `margin` of the fastest passing one (by ratio to fp32,
    which is comparable across timing rounds)."""
    passing = [c for c in candidates if c.passes and c.ratio is not None]
    if not passing:
        return None
    best = min(c.ratio for c in passing)
    return next(c for c in passing if c.ratio <= best * (1 + margin))


def slower_op_types(cand: Candidate, bench: Bench, work: Path, baseline: Path) -> list[str]:
    """Op types whose kernels take longer in the int8 candidate than in fp32, from onnxruntime's
    profiler (QLinearConv counts as Conv, FusedConv as Conv, ...)."""
    from edgebuild.steps.ort.runtime import session

    def by_op(path: Path, tag: str) -> dict[str, float]:
        sess = session(
            path, bench.threads, what=f"the {tag} model", profile_prefix=str(work / f"profile-{tag}")
        )
        feed = bench.feeds[0]
        for _ in range(20):
            sess.run(None, feed)
        trace = Path(sess.end_profiling())
        totals: dict[str, float] = {}
        try:
            for event in json.loads(trace.read_text()):
                if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
                    op = _source_op(event.get("args", {}).get("op_name", ""))
                    totals[op] = totals.get(op, 0.0) + float(event.get("dur", 0))
        finally:
            trace.unlink(missing_ok=True)
        return totals

    int8, fp32 = by_op(cand.path, "int8"), by_op(baseline, "fp32")
    cand.figures["profile_us"] = {
        op: {"int8": round(t, 1), "fp32": round(fp32.get(op, 0.0), 1)}
        for op, t in sorted(int8.items())
        if op in QUANTIZABLE_OP_TYPES
    }
    return [
        op
        for op in QUANTIZABLE_OP_TYPES
        if op in int8
        and op in fp32
        and int8[op] > fp32[op]
        and op not in cand.options.exclude_op_types
        and op not in WEIGHT_OP_TYPES
    ]


# the ops that hold the weights stay quantized: without them the "int8" model is fp32 with extra
# steps, and whether that pays is the latency gate's question, not the search's
WEIGHT_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _source_op(op: str) -> str:
    if op.startswith("QLinear"):
        return op[len("QLinear") :]
    return {
        "ConvInteger": "Conv",
        "MatMulInteger": "MatMul",
        "QGemm": "Gemm",
        "FusedConv": "Conv",
        "NhwcFusedConv": "Conv",
        "FusedGemm": "Gemm",
        "FusedMatMul": "MatMul",
        "DynamicQuantizeMatMul": "MatMul",
    }.get(op, op)


def search(
    base: Int8Options,
    vary: dict,
    prepared: Path,
    work: Path,
    baseline: Path,
    bench: Bench,
    reader_factory,
    margin: float,
    log,
    accuracy_fallback: bool = False,
    max_ratio: float | None = None,
) -> tuple[Candidate | None, list[Candidate], str, dict | None]:
    """The winning candidate (None when none passes the gates: the best-agreeing one is then in
    the list), every candidate tried, why the winner won, and the accuracy fallback's record (None
    when it did not run). vary: which options the user left to the search ({"activation_type",
    "per_channel", "calibrate_method"} as keys set to True). accuracy_fallback: when nothing passes
    the gates, keep the nodes around the worst-quantized activations in float (fallback.py)."""
    tried: list[Candidate] = []
    fallback_record = None

    def build(options: Int8Options) -> Candidate:
        path = work / f"candidate-{len(tried)}.onnx"
        cand = Candidate(options, path)
        try:
            quantize(prepared, path, options, reader_factory, work)
        except StepFailed as exc:
            cand.error = str(exc)
        tried.append(cand)
        log.info("int8 candidate %d: %s", len(tried) - 1, options.label())
        return cand

    first = [build(base)]
    if vary.get("activation_type"):
        first.append(build(base.but(activation_type="int8" if base.activation_type == "uint8" else "uint8")))
    if vary.get("per_channel") and base.per_channel:
        first.append(build(base.but(per_channel=False)))
    measure(first, bench)
    winner = pick(first, margin)
    reason = "fastest of the first round within the margin"
    if winner is None and vary.get("calibrate_method"):
        # other calibrations change agreement, not speed: try them on the best-agreeing options
        closest = best_agreeing(first) or first[0]
        more = [
            build(closest.options.but(calibrate_method=m))
            for m in ("percentile", "entropy")
            if m != closest.options.calibrate_method
        ]
        measure(more, bench)
        winner = pick(more, margin)
        reason = "the only calibration that passes the gates"
    if winner is None and accuracy_fallback:
        from edgebuild.steps.ort.fallback import failing_outputs, fallback

        start = best_agreeing(tried)
        if start is not None:
            op_types = [t for t in QUANTIZABLE_OP_TYPES if t not in start.options.exclude_op_types]
            winner, fallback_record = fallback(
                start,
                prepared,
                bench,
                build,
                lambda cands: measure(cands, bench),
                lambda c: failing_outputs({"outputs": c.outputs}, bench.gates),
                reader_factory,
                op_types,
                max_ratio,
                work,
                log,
            )
            if winner is not None:
                for cand in tried:
                    cand.session = None
                return winner, tried, f"accuracy fallback: {fallback_record['result']}", fallback_record
    if winner is not None:
        try:
            slow = slower_op_types(winner, bench, work, baseline)
        except StepFailed as exc:
            log.warning("profiling failed: %s", exc)
            slow = []
        challengers = []
        if slow:  # the op types the profiler shows slower in int8, kept float
            challengers.append(
                (
                    build(
                        winner.options.but(
                            exclude_op_types=tuple(winner.options.exclude_op_types) + tuple(slow)
                        )
                    ),
                    f"keeping {'/'.join(slow)} in float (slower in int8 by profile)",
                )
            )
        if depthwise_convs(prepared) and not winner.options.float_depthwise:
            challengers.append(
                (
                    build(winner.options.but(float_depthwise=True)),
                    "keeping depthwise convolutions in float (slow as QLinearConv)",
                )
            )
        if challengers:
            measure([winner] + [c for c, _ in challengers], bench)
            fine = [
                (c, why)
                for c, why in challengers
                if c.passes
                and c.ratio is not None
                and winner.ratio is not None
                and c.ratio < winner.ratio * (1 - margin)
            ]
            if fine:
                winner, why = min(fine, key=lambda cw: cw[0].ratio)
                reason = f"{why} is faster"
            else:
                reason += "; " + " and ".join(why for _, why in challengers) + " was not faster by the margin"
    for cand in tried:
        cand.session = None
    return winner, tried, reason, fallback_record

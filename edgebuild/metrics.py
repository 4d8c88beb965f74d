"""How far an artifact's outputs are from its source model's, and how fast it runs on this host."""

from __future__ import annotations

import time


def compare(reference, candidate, labels=None) -> dict:
    """Agreement of two output arrays (N, ...): errors, cosine, and for classifiers (N, C) top-1
    agreement, accuracy against labels and per-class accuracy with the worst class's drop."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(candidate, dtype=np.float64)
    finite = _finite_rows(ref) & _finite_rows(out)
    diff = np.abs(ref - out)[finite]
    flat_r = np.where(finite[:, None], ref.reshape(len(ref), -1), 0.0)
    cosines, norms = sample_cosines(flat_r, np.where(finite[:, None], out.reshape(len(out), -1), 0.0), finite)
    judged = judged_samples(norms)
    result = {
        "samples": int(len(ref)),
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
        "max_rel_error": float((diff / np.maximum(np.abs(ref[finite]), 1e-6)).max()) if diff.size else 0.0,
        "cosine_min": float(cosines[judged].min()) if judged.any() else 1.0,
        "cosine_mean": float(cosines[judged].mean()) if judged.any() else 1.0,
        "non_finite_samples": int((~finite).sum()),
    }
    if len(ref) and (~judged).sum():
        result["quiet_samples"] = int((~judged).sum())
    if ref.ndim == 2 and ref.shape[1] > 1:
        # a non-finite artifact row names no class (-1), so it neither agrees nor counts as correct
        ref_top, out_top = ref.argmax(1), np.where(finite, out.argmax(1), -1)
        result["top1_agreement"] = float((ref_top == out_top).mean())
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)[: len(ref)]
            result["accuracy_source"] = float((ref_top == labels).mean())
            result["accuracy"] = float((out_top == labels).mean())
            result["accuracy_drop"] = result["accuracy_source"] - result["accuracy"]
            per_class = {}
            for cls in np.unique(labels):
                mask = labels == cls
                src, art = float((ref_top[mask] == cls).mean()), float((out_top[mask] == cls).mean())
                per_class[str(int(cls))] = {
                    "n": int(mask.sum()),
                    "source": src,
                    "artifact": art,
                    "drop": src - art,
                }
            worst = max(per_class, key=lambda c: per_class[c]["drop"])
            result["per_class"] = per_class
            result["worst_class"] = worst
            result["worst_class_drop"] = per_class[worst]["drop"]
    return result


def _finite_rows(array):
    """Per sample (first axis): True where every value is finite."""
    import numpy as np

    return (
        np.isfinite(array.reshape(len(array), -1)).all(axis=1)
        if array.ndim
        else np.isfinite(array).reshape(1)
    )


# A sample whose reference output is this much weaker than the set's strongest carries no signal
# for cosine to measure (a text detector's map on a photo without text peaks at 1e-7): cosine
# there is rounding noise, so its error figures (absolute and set-wide relative error) judge it.
QUIET_NORM_RATIO = 1e-3


def sample_cosines(flat_r, flat_o, finite):
    """Per-sample cosines of two (N, K) float64 arrays, and each sample's reference norm for
    judged_samples (inf where the sample is not finite: always judged).

    A sample holding NaN or inf (finite False) never agrees (0.0). Where both sides are all zero
    they agree (1.0); where only one is, it lost or invented the whole signal (0.0)."""
    import numpy as np

    cosines, defined = _row_cosines(flat_r, flat_o)
    ref_norm, out_norm = np.linalg.norm(flat_r, axis=1), np.linalg.norm(flat_o, axis=1)
    both_zero = (ref_norm == 0) & (out_norm == 0)
    cosines = np.where(finite, np.where(defined, cosines, np.where(both_zero, 1.0, 0.0)), 0.0)
    return cosines, np.where(finite, ref_norm, np.inf)


def judged_samples(ref_norms):
    """Which samples cosine judges: all but the quiet ones (reference norm below QUIET_NORM_RATIO of
    the set's largest finite one), unless every sample is quiet."""
    import numpy as np

    finite = np.isfinite(ref_norms)
    strongest = ref_norms[finite].max() if finite.any() else 0.0
    quiet = finite & (ref_norms < QUIET_NORM_RATIO * strongest)
    return ~quiet if not quiet.all() else np.ones(len(ref_norms), dtype=bool)


def _row_cosines(flat_r, flat_o):
    """Cosine similarity of each row pair of two 2-D float64 arrays, and a mask of the rows where it
    is defined (neither row all zero nor holding NaN); undefined rows hold 0.0."""
    import numpy as np

    norms = np.linalg.norm(flat_r, axis=1) * np.linalg.norm(flat_o, axis=1)
    defined = norms > 0
    with np.errstate(invalid="ignore", over="ignore"):
        cosines = np.where(defined, (flat_r * flat_o).sum(axis=1) / np.maximum(norms, 1e-300), 0.0)
    return cosines, defined


def cosine(a, b) -> float:
    """Cosine similarity of two arrays read as flat vectors: 1.0 when both are all zero, 0.0 when
    only one is or either holds NaN."""
    import numpy as np

    flat_a = np.asarray(a, dtype=np.float64).reshape(1, -1)
    flat_b = np.asarray(b, dtype=np.float64).reshape(1, -1)
    values, defined = _row_cosines(flat_a, flat_b)
    if defined[0]:
        return float(values[0])
    return 1.0 if not flat_a.any() and not flat_b.any() else 0.0


def deviation(reference, candidate) -> dict[str, float]:
    """Two arrays compared whole (flattened): max_abs, the largest absolute error; max_rel, that
    error over the reference's largest magnitude (over 1 when the reference is all zero); cosine.
    inf, inf and 0.0 when they hold different numbers of values."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(candidate, dtype=np.float64).ravel()
    if ref.shape != got.shape:
        return {"max_abs": float("inf"), "max_rel": float("inf"), "cosine": 0.0}
    max_abs = float(np.abs(ref - got).max(initial=0.0))
    scale = float(np.abs(ref).max(initial=0.0)) or 1.0
    return {"max_abs": max_abs, "max_rel": max_abs / scale, "cosine": cosine(ref, got)}


def within(reference, candidate, atol: float, rtol: float) -> bool:
    """numpy.allclose of candidate to reference (NaN matches NaN); False when their shapes differ."""
    import numpy as np

    if np.shape(reference) != np.shape(candidate):
        return False
    return bool(
        np.allclose(
            np.asarray(candidate, dtype=np.float64),
            np.asarray(reference, dtype=np.float64),
            atol=atol,
            rtol=rtol,
            equal_nan=True,
        )
    )


def latency(run_once, warmup: int = 10, runs: int = 200, budget_s: float = 5.0) -> dict:
    """Wall time per call after warm-up: p50/p95/p99 in milliseconds, stopping early at the budget
    (after at least 30 runs); p99 is None (not measured) below 100 runs."""
    return interleaved_latency({"only": run_once}, warmup=warmup, runs=runs, budget_s=budget_s, min_runs=30)[
        "only"
    ]


P99_MIN_RUNS = 100  # below this a 99th percentile is just the slowest run or two


def interleaved_latency(
    runners: dict, warmup: int = 10, runs: int = 100, budget_s: float = 30.0, min_runs: int = 10
) -> dict[str, dict]:
    """Time several callables round-robin (each round runs every one once, the first one rotating),
    so load from the rest of the machine and clock changes fall on all of them alike and their
    ratios can be trusted. Stops after `runs` rounds, or at the time budget once `min_runs` rounds
    are done; each figure set says how many runs it has and whether the cap stopped it."""
    import numpy as np

    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    from edgebuild.hostinfo import snapshot

    host = snapshot()  # CPU, cores and load while measuring: the report judges the figures by it
    deadline = time.perf_counter() + budget_s
    done = 0
    while done < runs and (done < min_runs or time.perf_counter() < deadline):
        shift = done % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runners[name]()
            times[name].append((time.perf_counter() - start) * 1000.0)
        done += 1
    result = {}
    for name in names:
        ms = np.array(times[name])
        figures = {
            "runs": len(ms),
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) >= P99_MIN_RUNS else None,
            "mean_ms": float(ms.mean()),
        }
        if len(ms) < runs:
            figures["stopped"] = f"time cap {budget_s:g} s reached after {len(ms)} of {runs} runs"
        if len(ms) < P99_MIN_RUNS:
            figures["p99_note"] = f"not measured: {len(ms)} runs < {P99_MIN_RUNS}"
        figures["host"] = host
        result[name] = figures
    return result


# --- every output of a model -------------------------------------------------------------------

# Defaults for "auto" gates by precision: an optimized fp32 graph only reorders float arithmetic,
# fp16 keeps about three significant digits, int8 about two. Every output is held to them (class
# scores included); label gates (accuracy) apply only where the data has labels.
OUTPUT_GATE_DEFAULTS = {
    "fp32": {"min_output_cosine": 0.9999, "max_output_rel_error": 0.01},
    "fp16": {"min_output_cosine": 0.999, "max_output_rel_error": 0.05},
    "int8": {"min_output_cosine": 0.98, "max_output_rel_error": 0.25},
    "int8-dynamic": {"min_output_cosine": 0.98, "max_output_rel_error": 0.25},
}
# an artifact another converter wrote for another runtime (LiteRT from onnx2tf) differs from
# onnxruntime a little even in fp32 (other kernels, fused ops): its fp32 defaults are looser
CONVERTED_OUTPUT_GATE_DEFAULTS = dict(OUTPUT_GATE_DEFAULTS, fp32=OUTPUT_GATE_DEFAULTS["fp16"])
# a quantized artifact exists to be faster than fp32: by default it may not be slower
LATENCY_RATIO_DEFAULTS = {"int8": 1.0, "int8-dynamic": 1.0}


def resolve_gates(gates: dict, precision: str, output_defaults: dict = OUTPUT_GATE_DEFAULTS) -> dict:
    """The gates with every "auto" replaced by this precision's default (None: not checked)."""
    defaults = dict(
        output_defaults.get(precision, {}), max_latency_ratio=LATENCY_RATIO_DEFAULTS.get(precision)
    )
    return {name: defaults.get(name) if value == "auto" else value for name, value in gates.items()}


def bad_gates(gates: dict) -> list[str]:
    """Gate values that are neither a number, false nor "auto" (they would silently check nothing)."""
    return [
        f'{name} = {value!r}: a gate is a number, false or "auto"'
        for name, value in (gates or {}).items()
        if not (
            value is None
            or value is False
            or value == "auto"
            or (isinstance(value, (int, float)) and not isinstance(value, bool))
        )
    ]


class OutputAgreement:
    """One model output compared batch by batch between source and artifact: per-sample cosine
    (judged_samples: quiet samples left to the error figures),
    relative L2 error over the whole set, largest absolute error, and the samples that are not
    finite or whose shapes differ (variable-length detector outputs)."""

    def __init__(self) -> None:
        self.cosines: list = []
        self.ref_norms: list = []  # per sample; 0.0 where not comparable (shape/dtype, NaN)
        self.err_sq = self.ref_sq = self.max_abs = 0.0
        self.non_finite = self.shape_mismatch = 0

    def add(self, reference, candidate, batch: int) -> None:
        import numpy as np

        ref, out = np.asarray(reference), np.asarray(candidate)
        rows = batch if ref.ndim and ref.shape[0] == batch and batch > 0 else 1
        if ref.shape != out.shape or ref.dtype.kind not in "biuf" or out.dtype.kind not in "biuf":
            if ref.shape != out.shape or not np.array_equal(ref, out):
                self.shape_mismatch += rows
                self.cosines.extend([0.0] * rows)
            else:
                self.cosines.extend([1.0] * rows)
            self.ref_norms.extend([np.inf] * rows)  # always judged
            return
        ref = ref.astype(np.float64).reshape(rows, -1)
        out = out.astype(np.float64).reshape(rows, -1)
        finite = np.isfinite(ref).all(axis=1) & np.isfinite(out).all(axis=1)
        self.non_finite += int((~finite).sum())
        flat_r = np.where(finite[:, None], ref, 0.0)
        cosines, norms = sample_cosines(flat_r, np.where(finite[:, None], out, 0.0), finite)
        self.cosines.extend(cosines.tolist())
        self.ref_norms.extend(norms.tolist())
        diff = out[finite] - ref[finite]
        self.err_sq += float((diff**2).sum())
        self.ref_sq += float((ref[finite] ** 2).sum())
        if diff.size:
            self.max_abs = max(self.max_abs, float(np.abs(diff).max()))

    def figures(self) -> dict:
        import numpy as np

        cosines = np.array(self.cosines) if self.cosines else np.ones(1)
        keep = judged_samples(np.array(self.ref_norms) if self.ref_norms else np.full(1, np.inf))
        judged = cosines[keep]
        if self.ref_sq > 0:
            rel = float(np.sqrt(self.err_sq / self.ref_sq))
        else:
            rel = 0.0 if self.err_sq == 0 else 1.0
        figures = {
            "samples": len(self.cosines),
            "cosine_min": float(judged.min()),
            "cosine_mean": float(judged.mean()),
            "rel_error": rel,
            "max_abs_error": self.max_abs,
            "non_finite_samples": self.non_finite,
        }
        if not keep.all():
            figures["quiet_samples"] = int((~keep).sum())
        if self.shape_mismatch:
            figures["shape_mismatch_samples"] = self.shape_mismatch
        return figures


def compare_outputs(pairs, names: list[str]) -> dict[str, dict]:
    """Figures per output name from (reference outputs, artifact outputs, batch size) per batch."""
    agreements = {name: OutputAgreement() for name in names}
    for ref_outputs, art_outputs, batch in pairs:
        for name, ref, out in zip(names, ref_outputs, art_outputs):
            agreements[name].add(ref, out, batch)
    return {name: a.figures() for name, a in agreements.items()}


OUTPUT_RULES = [
    ("min_cosine", "cosine_min", ">="),
    ("min_output_cosine", "cosine_mean", ">="),
    ("max_output_rel_error", "rel_error", "<="),
]


def _gate_limit(gates: dict, gate: str):
    """A numeric gate limit, or None when the gate is absent, false, "auto" left unresolved or negative."""
    limit = gates.get(gate)
    if limit is None or isinstance(limit, (bool, str)) or limit < 0:
        return None
    return limit


def _output_misses(outputs: dict, gates: dict) -> list[str]:
    """Per-output gate misses, each naming the worst output (and how many more miss the gate);
    any sample that is not finite fails on its own."""
    misses = []
    for name, figures in outputs.items():
        if figures.get("non_finite_samples"):
            misses.append(
                f"output '{name}' is not finite (NaN or inf) on {figures['non_finite_samples']} of "
                f"{figures['samples']} samples"
            )
        if figures.get("shape_mismatch_samples"):
            misses.append(
                f"output '{name}' has a different shape or value on {figures['shape_mismatch_samples']} "
                f"of {figures['samples']} samples"
            )
    for gate, figure, op in OUTPUT_RULES:
        limit = _gate_limit(gates, gate)
        if limit is None:
            continue
        failing = [
            (figures[figure], name)
            for name, figures in outputs.items()
            if not (figures[figure] >= limit if op == ">=" else figures[figure] <= limit)
        ]
        if failing:
            value, worst = (min if op == ">=" else max)(failing)
            more = f" ({len(failing)} of {len(outputs)} outputs miss it)" if len(failing) > 1 else ""
            misses.append(f"{figure} {value:.4f} on output '{worst}' breaks gate {gate} = {limit}{more}")
    return misses


def check_gates(figures: dict, gates: dict) -> list[str]:
    """Gate misses as readable lines; gates: max_accuracy_drop, max_class_drop, min_cosine,
    min_top1_agreement, max_abs_error, and where figures["outputs"] holds every output's figures
    min_output_cosine and max_output_rel_error (min_cosine then applies to every output). Absent,
    false, "auto" or a negative value disables a gate. Samples that are not finite always miss."""
    misses = []
    outputs = figures.get("outputs")
    rules = [
        ("max_accuracy_drop", "accuracy_drop", "<="),
        ("max_class_drop", "worst_class_drop", "<="),
        ("min_top1_agreement", "top1_agreement", ">="),
        ("max_abs_error", "max_abs_error", "<="),
    ]
    if outputs:
        misses += _output_misses(outputs, gates)
    else:
        rules.insert(2, ("min_cosine", "cosine_min", ">="))
        if figures.get("non_finite_samples"):
            misses.append(
                f"the output is not finite (NaN or inf) on {figures['non_finite_samples']} of "
                f"{figures.get('samples', '?')} samples"
            )
    for gate, figure, op in rules:
        limit = _gate_limit(gates, gate)
        if limit is None or figure not in figures:
            continue
        value = figures[figure]
        ok = value <= limit if op == "<=" else value >= limit
        if not ok:
            extra = f" (class {figures['worst_class']})" if figure == "worst_class_drop" else ""
            misses.append(f"{figure} {value:.4f}{extra} breaks gate {gate} = {limit}")
    return misses

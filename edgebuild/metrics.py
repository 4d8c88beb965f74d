"""How far an artifact's outputs are from its source model's, and how fast it runs on this host."""
from __future__ import annotations

import time


def compare(reference, candidate, labels=None) -> dict:
    """Agreement of two output arrays (N, ...): errors, cosine, and for classifiers (N, C) top-1
    agreement, accuracy against labels and per-class accuracy with the worst class's drop."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(candidate, dtype=np.float64)
    diff = np.abs(ref - out)
    cosines, defined = _row_cosines(ref.reshape(len(ref), -1), out.reshape(len(out), -1))
    # compare's rule: a sample where either side is all zero (or holds NaN) counts as agreeing;
    # its error figures, not its cosine, speak for it
    cosines = np.where(defined, cosines, 1.0)
    result = {
        "samples": int(len(ref)),
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
        "max_rel_error": float((diff / np.maximum(np.abs(ref), 1e-6)).max()) if diff.size else 0.0,
        "cosine_min": float(cosines.min()) if len(cosines) else 1.0,
        "cosine_mean": float(cosines.mean()) if len(cosines) else 1.0,
    }
    if ref.ndim == 2 and ref.shape[1] > 1:
        ref_top, out_top = ref.argmax(1), out.argmax(1)
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
                per_class[str(int(cls))] = {"n": int(mask.sum()), "source": src, "artifact": art, "drop": src - art}
            worst = max(per_class, key=lambda c: per_class[c]["drop"])
            result["per_class"] = per_class
            result["worst_class"] = worst
            result["worst_class_drop"] = per_class[worst]["drop"]
    return result


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
    return bool(np.allclose(np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64),
                            atol=atol, rtol=rtol, equal_nan=True))


def latency(run_once, warmup: int = 10, runs: int = 200, budget_s: float = 5.0) -> dict:
    """Wall time per call after warm-up: p50/p95/p99 in milliseconds, stopping early at the budget."""
    import numpy as np

    for _ in range(warmup):
        run_once()
    times = []
    deadline = time.perf_counter() + budget_s
    while len(times) < runs and (len(times) < 30 or time.perf_counter() < deadline):
        start = time.perf_counter()
        run_once()
        times.append((time.perf_counter() - start) * 1000.0)
    ms = np.array(times)
    return {"runs": len(times), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def check_gates(figures: dict, gates: dict) -> list[str]:
    """Gate misses as readable lines; gates: max_accuracy_drop, max_class_drop, min_cosine,
    min_top1_agreement, max_abs_error (absent, false or a negative value disables a gate)."""
    misses = []
    rules = [("max_accuracy_drop", "accuracy_drop", "<="), ("max_class_drop", "worst_class_drop", "<="),
             ("min_cosine", "cosine_min", ">="), ("min_top1_agreement", "top1_agreement", ">="),
             ("max_abs_error", "max_abs_error", "<=")]
    for gate, figure, op in rules:
        limit = gates.get(gate)
        if limit is None or isinstance(limit, bool) or limit < 0 or figure not in figures:
            continue
        value = figures[figure]
        ok = value <= limit if op == "<=" else value >= limit
        if not ok:
            extra = f" (class {figures['worst_class']})" if figure == "worst_class_drop" else ""
            misses.append(f"{figure} {value:.4f}{extra} breaks gate {gate} = {limit}")
    return misses

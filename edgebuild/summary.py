"""The build summary: the JSON object of DESIGN.md (`--json`) and its human form."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgebuild import __version__

if TYPE_CHECKING:
    from edgebuild.build_result import BuildResult


def summary(build: BuildResult) -> dict:
    """The summary of a collected build (collect.collect_targets)."""
    counts = {
        "total": len(build.graph.nodes),
        "run": 0,
        "cached": 0,
        "failed": 0,
        "deferred": 0,
        "blocked": 0,
    }
    for outcome in build.outcomes.values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if (
            outcome.status == "failed" and outcome.log is not None
        ):  # it ran, then failed: it counts as run too
            counts["run"] += 1
    targets = {}
    for name, r in build.targets.items():
        targets[name] = {
            "status": r.status,
            "recipe": r.recipe,
            "artifacts": r.artifacts,
            "bundle": r.bundle,
            "reason": r.reason,
            "device": r.device,
        }
        if r.deltas:
            targets[name]["deltas"] = r.deltas
        if r.failed_step:
            targets[name]["failed_step"] = r.failed_step
            targets[name]["log"] = r.log
        for key in ("metrics", "coverage"):
            if r.metadata.get(key):
                targets[name][key] = r.metadata[key]
        unmeasured = (r.metadata.get("metrics") or {}).get("not_measured")
        if unmeasured:
            targets[name]["not_measured"] = unmeasured
    ok = all(t["status"] != "failed" for t in targets.values())
    return {
        "ok": ok,
        "edgebuild_version": __version__,
        "steps": {k: counts[k] for k in ("total", "run", "cached", "failed", "deferred")},
        "targets": targets,
    }


def exit_code(doc: dict, strict: bool) -> int:
    statuses = {t["status"] for t in doc["targets"].values()}
    if "failed" in statuses or (strict and "deferred" in statuses):
        return 1
    if strict and any(t.get("not_measured") for t in doc["targets"].values()):
        return 1  # a gate that could not be evaluated is no pass for release CI
    return 0


def print_human(doc: dict, stream) -> None:
    marks = {"built": "built   ", "cached": "cached  ", "failed": "FAILED  ", "deferred": "deferred"}
    for name, t in doc["targets"].items():
        line = f"{marks.get(t['status'], t['status'])} {name} [{t['recipe']}]"
        if t["artifacts"]:
            line += "  " + ", ".join(t["artifacts"])
        if t.get("bundle"):
            line += f"  -> {t['bundle']}"
        print(line, file=stream)
        if t["reason"]:
            print(f"         {t['reason']}", file=stream)
        if t.get("not_measured"):
            reasons = sorted(set(t["not_measured"].values()))
            print(
                f"         not measured: {'; '.join(reasons)} ({', '.join(sorted(t['not_measured']))}; "
                f"--strict fails on this)",
                file=stream,
            )
        data = (t.get("metrics") or {}).get("data")
        if data:
            print(f"         verified on {data}", file=stream)
        speed = speed_note(t.get("metrics") or {})
        if speed:
            print(f"         {speed}", file=stream)
    if getattr(stream, "isatty", lambda: False)():
        print_table(doc, stream)
    s = doc["steps"]
    print(
        f"{s['total']} steps: {s['run']} run, {s['cached']} cached, {s['failed']} failed, "
        f"{s['deferred']} deferred",
        file=stream,
    )


def speed_note(metrics: dict) -> str | None:
    """The line saying how a quantized (or fp16) artifact compares with the fp32 one in latency and
    size, and when the fp32 model shipped in its place."""
    int8 = metrics.get("int8") or {}
    latency = metrics.get("latency") or {}
    ratio = latency.get("ratio_to_fp32")
    if int8.get("shipped") == "fp32":
        return f"shipped the fp32 model instead of int8: {int8.get('shipped_reason', 'int8 was slower')}"
    if ratio is None:
        return None
    size = metrics.get("size_ratio_to_fp32")
    text = (
        f"latency x{ratio:.2f} of fp32 (p50, interleaved), size x{size:.2f}"
        if size
        else f"latency x{ratio:.2f} of fp32 (p50, interleaved)"
    )
    if ratio > 1.0 and int8:
        text += ": SLOWER than fp32 (allowed by this target's max_latency_ratio)"
    return text


def print_table(doc: dict, stream) -> None:
    """One row per target: status, size, p50 and its ratio to fp32, the worst output's agreement."""
    rows = [("target", "status", "size", "p50 ms", "x fp32", "worst output (cosine)")]
    for name, t in doc["targets"].items():
        m = t.get("metrics") or {}
        lat = m.get("latency") or {}
        outputs = m.get("outputs") or {}
        worst = min(outputs.items(), key=lambda kv: kv[1].get("cosine_mean", 1.0)) if outputs else None
        rows.append(
            (
                name,
                t["status"],
                f"{m['size_bytes'] / 1024:.1f} KiB" if m.get("size_bytes") else "-",
                f"{lat['p50_ms']:.4f}" if lat.get("p50_ms") is not None else "-",
                f"{lat['ratio_to_fp32']:.2f}" if lat.get("ratio_to_fp32") is not None else "-",
                f"{worst[0]} ({worst[1].get('cosine_mean', 0):.5f})" if worst else "-",
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip(), file=stream)

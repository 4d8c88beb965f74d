"""The build summary: the JSON object of DESIGN.md (`--json`) and its human form."""
from __future__ import annotations

from edgebuild import __version__


def summary(graph, outcomes: dict, results: dict) -> dict:
    counts = {"total": len(graph.nodes), "run": 0, "cached": 0, "failed": 0, "deferred": 0, "blocked": 0}
    for outcome in outcomes.values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    targets = {}
    for name, r in results.items():
        targets[name] = {"status": r.status, "recipe": r.recipe, "artifacts": r.artifacts, "bundle": r.bundle,
                         "reason": r.reason, "device": r.device}
        if r.failed_step:
            targets[name]["failed_step"] = r.failed_step
            targets[name]["log"] = r.log
        for key in ("metrics", "coverage"):
            if r.metadata.get(key):
                targets[name][key] = r.metadata[key]
    ok = all(t["status"] != "failed" for t in targets.values())
    return {"ok": ok, "edgebuild_version": __version__,
            "steps": {k: counts[k] for k in ("total", "run", "cached", "failed", "deferred")},
            "targets": targets}


def exit_code(doc: dict, strict: bool) -> int:
    statuses = {t["status"] for t in doc["targets"].values()}
    if "failed" in statuses or (strict and "deferred" in statuses):
        return 1
    return 0


def print_human(doc: dict, stream) -> None:
    marks = {"built": "built   ", "cached": "cached  ", "failed": "FAILED  ", "deferred": "deferred",
             "skipped": "skipped "}
    for name, t in doc["targets"].items():
        line = f"{marks.get(t['status'], t['status'])} {name} [{t['recipe']}]"
        if t["artifacts"]:
            line += "  " + ", ".join(t["artifacts"])
        if t.get("bundle"):
            line += f"  -> {t['bundle']}"
        print(line, file=stream)
        if t["reason"]:
            print(f"         {t['reason']}", file=stream)
    s = doc["steps"]
    print(f"{s['total']} steps: {s['run']} run, {s['cached']} cached, {s['failed']} failed, "
          f"{s['deferred']} deferred", file=stream)

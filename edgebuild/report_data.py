"""What `edgebuild report` shows, as data (also `report --json`): each target's figures whatever its
runtime, how far each figure can be trusted, and per model a comparison of every target against the
fp32 reference. Results come from .edgebuild/state/results/*.json, written by several recipes whose
metrics grow over time: every key is read defensively, and what is absent is said, not invented."""

from __future__ import annotations

import json
from pathlib import Path

from edgebuild import hostinfo

SPREAD_LIMIT = 3.0  # p95 / p50 above this: the host, not the model, made the figure
P95_MIN_RUNS = 20  # fewer runs: a 95th percentile is the slowest run
P99_MIN_RUNS = 100
LLM_RECIPES = {"gguf"}


def _num(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _metrics(result: dict) -> dict:
    m = result.get("metrics")
    return m if isinstance(m, dict) else {}


def _get(data, *path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def source_bytes(source: Path) -> int | None:
    """Size of a model's source: the .onnx (with external data beside it), or a Hugging Face folder's
    weight files."""
    try:
        if source.is_file():
            return source.stat().st_size
        weights = [
            p for p in source.rglob("*") if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".gguf"}
        ]
        files = weights or [p for p in source.rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in files) or None
    except OSError:
        return None


# --- one target's figures ----------------------------------------------------------------------


def _size(result: dict) -> dict | None:
    m = _metrics(result)
    for key, what in (
        ("size_bytes", "artifact"),
        ("package_bytes", "Core ML package"),
        ("engine_bytes", "TensorRT engine"),
    ):
        if _num(m.get(key)):
            what = (
                "prepared ONNX (the engine is built on the device)"
                if (result.get("recipe") == "tensorrt" and key == "size_bytes")
                else what
            )
            return {"bytes": int(m[key]), "what": what}
    return None


def _quality(result: dict) -> list[dict]:
    """Every agreement/accuracy figure the target recorded, as {key, label, value, text}."""
    m = _metrics(result)
    out = []

    def add(key, label, value, text):
        if _num(value) is not None:
            out.append({"key": key, "label": label, "value": float(value), "text": text})

    if _num(m.get("accuracy")) is not None:
        drop = _num(m.get("accuracy_drop"))
        add(
            "accuracy",
            "accuracy",
            m["accuracy"],
            f"{100 * m['accuracy']:.1f} %" + (f" (drop {100 * drop:.1f} pp)" if drop is not None else ""),
        )
    add("top1_agreement", "top-1 agreement", m.get("top1_agreement"), _pct(m.get("top1_agreement")))
    add(
        "argmax_agreement", "next-token agreement", m.get("argmax_agreement"), _pct(m.get("argmax_agreement"))
    )
    cos_min = (
        _num(m.get("cosine_min")) if _num(m.get("cosine_min")) is not None else _num(m.get("min_cosine"))
    )
    if cos_min is not None:
        mean = _num(m.get("cosine_mean"))
        add(
            "cosine_min",
            "cosine (worst sample)",
            cos_min,
            f"{cos_min:.5f}" + (f" (mean {mean:.5f})" if mean is not None else ""),
        )
    ver = m.get("verification") if isinstance(m.get("verification"), dict) else {}
    if ver:
        add(
            "verification_top1", "top-1 agreement", ver.get("top1_agreement"), _pct(ver.get("top1_agreement"))
        )
        cosines = [
            _num(o.get("min_cosine")) for o in (ver.get("outputs") or {}).values() if isinstance(o, dict)
        ]
        cosines = [c for c in cosines if c is not None]
        if cosines:
            add("verification_cosine", "cosine (worst sample)", min(cosines), f"{min(cosines):.5f}")
        if ver.get("package_run") is False:
            out.append(
                {
                    "key": "verification_note",
                    "label": "checked",
                    "value": None,
                    "text": str(ver.get("package_run_reason") or "the package itself was not run"),
                }
            )
    unmeasured = m.get("not_measured") or result.get("not_measured")
    for gate, why in sorted(unmeasured.items() if isinstance(unmeasured, dict) else []):
        out.append(
            {
                "key": f"not_measured:{gate}",
                "label": gate.replace("_", " "),
                "value": None,
                "text": f"not measured: {why}",
            }
        )
    return out


def _pct(value) -> str:
    return f"{100 * value:.1f} %" if _num(value) is not None else ""


def _latency(result: dict, report_host: dict) -> dict | None:
    lat = _get(result, "metrics", "latency")
    if not isinstance(lat, dict) or _num(lat.get("p50_ms")) is None:
        return None
    runs = _num(lat.get("runs"))
    p50, p95, p99 = (_num(lat.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms"))
    raw = lat.get("host") if isinstance(lat.get("host"), dict) else None
    host = (
        {
            "cpu": str(raw.get("cpu") or "unknown CPU"),
            "cores": _num(raw.get("cores")),
            "load_1m": _num(raw.get("load_1m")),
            "system": str(raw.get("system") or ""),
        }
        if raw
        else None
    )
    threads = _num(lat.get("threads"))
    unstable = []
    if p95 is not None and p50 and p95 / p50 > SPREAD_LIMIT:
        unstable.append(
            f"p95 is {p95 / p50:.0f}x p50 (over {SPREAD_LIMIT:g}x): the host's load or "
            f"thread scheduling, not the model"
        )
    if runs is not None and runs < P95_MIN_RUNS:
        unstable.append(f"{int(runs)} runs are too few for a 95th percentile")
        p95 = None
    if runs is not None and runs < P99_MIN_RUNS:
        p99 = None  # the slowest run or two, not a percentile
    cores = _num((host or {}).get("cores"))
    load = _num((host or {}).get("load_1m"))
    if threads and cores:
        free = max(cores - (load or 0.0), 0.0)
        if threads > 1 and threads > free:
            unstable.append(
                f"{int(threads)} threads on {int(cores)} cores with load {load:.1f} ({free:.1f} free)"
                if load is not None
                else f"{int(threads)} threads on {int(cores)} cores"
            )
    return {
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "mean_ms": _num(lat.get("mean_ms")),
        "runs": int(runs) if runs is not None else None,
        "threads": int(threads) if threads else None,
        "batch": _num(lat.get("batch")),
        "host": host,
        "host_known": host is not None,
        "p99_note": lat.get("p99_note") if p99 is None else None,
        "stopped": lat.get("stopped"),
        "unstable": "; ".join(unstable) or None,
        "tokens": _num(lat.get("tokens")),
        "tokens_per_s": _num(lat.get("tokens_per_s")),
    }


def _no_latency_reason(result: dict) -> tuple[str, str]:
    """(why no latency, the same in a few words for a table cell)."""
    recipe = result.get("recipe")
    if recipe == "coreml":
        return "not measured: Core ML packages run only on macOS/iOS", "macOS/iOS only"
    if recipe == "tensorrt":
        return "not measured: the engine is built and timed on the device", "on the device"
    if result.get("status") == "failed":
        return "not measured: the build failed", "build failed"
    return "not measured", "not measured"


def _coverage(result: dict) -> dict | None:
    cov = result.get("coverage")
    if not isinstance(cov, dict):
        return None
    ops = (
        _num(cov.get("ops_share"))
        if _num(cov.get("ops_share")) is not None
        else _num(cov.get("accelerated_share"))
    )
    macs = _num(cov.get("macs_share"))
    source = _text(cov.get("source")) or ("prediction" if cov.get("predicted") else "operator table")
    device = _text(cov.get("device") or cov.get("route") or result.get("recipe"))
    out = {
        "ops_share": ops,
        "macs_share": macs,
        "source": source,
        "device": device,
        "summary": _text(cov.get("summary")),
        "first_fallback": _text(cov.get("first_fallback")),
    }
    if _num(cov.get("mil_ops_total")):
        out["mil_ops"] = int(cov["mil_ops_total"])
    return out if (ops is not None or macs is not None or out["summary"] or out.get("mil_ops")) else None


def target_figures(name: str, result: dict, model: str | None, settings: dict, report_host: dict) -> dict:
    m = _metrics(result)
    latency = _latency(result, report_host)
    extras = []
    bpw = _num(m.get("bits_per_weight"))
    if bpw is not None:
        extras.append({"label": "bits per weight", "text": f"{bpw:.2f}"})
    if latency and latency.get("tokens_per_s"):
        extras.append(
            {
                "label": "tokens/s (prompt)",
                "text": f"{latency['tokens_per_s']:,.0f}" + (" (unstable)" if latency["unstable"] else ""),
            }
        )
    if _num(m.get("mil_ops")) and not _get(result, "coverage", "mil_ops_total"):
        extras.append({"label": "MIL ops", "text": str(int(m["mil_ops"]))})
    if _num(m.get("compression_ratio")) and m["compression_ratio"] != 1.0:
        extras.append({"label": "compression", "text": f"{m['compression_ratio']:.2f}x"})
    if _num(m.get("qdq_nodes")):
        extras.append({"label": "Q/DQ nodes", "text": str(int(m["qdq_nodes"]))})
    for key, label in (("delta_bytes", "delta size"), ("manifest", "deployment manifest")):
        value = m.get(key) or result.get(key)
        if value:
            extras.append({"label": label, "text": _bytes(value) if _num(value) else str(value)})
    precision = settings.get("precision") or settings.get("quantization")
    return {
        "name": name,
        "model": model,
        "status": str(result.get("status") or "unknown"),
        "recipe": str(result.get("recipe") or ""),
        "precision": _text(precision),
        "size": _size(result),
        "quality": _quality(result),
        "latency": latency,
        "device": _text(result.get("device")),
        "latency_note": None if latency else _no_latency_reason(result)[0],
        "latency_short": None if latency else _no_latency_reason(result)[1],
        "coverage": _coverage(result),
        "extras": extras,
        "bundle": _text(result.get("bundle")),
        "artifacts": [str(a) for a in result.get("artifacts") or [] if a]
        if isinstance(result.get("artifacts"), list)
        else [],
        "reason": _text(result.get("reason")),
        "failed_step": _text(result.get("failed_step")),
    }


def _text(value) -> str | None:
    return None if value is None or value == "" else str(value)


def _bytes(n) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# --- what ships: bundles, deltas, the deployment manifest ---------------------------------------

MAX_MANIFEST_BYTES = 8 << 20


def read_json_file(path: Path) -> dict | None:
    """A bundles/*.json file as data, or None when absent, too big or not a JSON object."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def deployment_figures(
    name: str, result: dict, bundles_dir: Path | None, deployment: dict | None, index: dict | None
) -> dict | None:
    """The bundle's size, and from the deployment manifest (when written) its version, the memory a
    device needs and the deltas available."""
    entry = _get(deployment, "targets", name) if deployment else None
    entry = entry if isinstance(entry, dict) else {}
    size = _num(entry.get("size"))
    if size is None and isinstance(_get(index, "bundles"), list):
        bundle_file = Path(str(result.get("bundle") or "")).name
        for item in index["bundles"]:
            if isinstance(item, dict) and item.get("target") == name and item.get("file") == bundle_file:
                size = _num(item.get("size"))
    if size is None and result.get("bundle") and bundles_dir is not None:
        try:
            size = (bundles_dir / Path(str(result["bundle"])).name).stat().st_size
        except OSError:
            size = None
    deltas = []
    for d in entry.get("deltas") or [] if isinstance(entry.get("deltas"), list) else []:
        if isinstance(d, dict) and _num(d.get("size")) is not None:
            deltas.append(
                {
                    "from": _text(d.get("from")),
                    "bytes": int(d["size"]),
                    "ratio": round(d["size"] / size, 4) if size else None,
                }
            )
    if not deltas and isinstance(result.get("deltas"), list):  # a release records them in the results too
        for d in result["deltas"]:
            if isinstance(d, dict) and _num(d.get("delta_bytes")) and d.get("delta"):
                deltas.append(
                    {
                        "from": _text(d.get("from")),
                        "bytes": int(d["delta_bytes"]),
                        "ratio": _num(d.get("ratio")),
                    }
                )
    if size is None and not entry:
        return None
    return {
        "bundle_bytes": int(size) if size is not None else None,
        "version": _text(entry.get("version")),
        "min_memory_mb": _num(entry.get("min_memory_mb")),
        "accelerator": _text(entry.get("accelerator")),
        "release_counter": _num(entry.get("release_counter")),
        "deltas": deltas,
        "in_manifest": bool(entry),
    }


# --- per model: every target against the fp32 reference ----------------------------------------


def _reference(targets: list[dict]) -> dict | None:
    """The target whose latency the others are compared with: the model's fp32 onnxruntime target,
    else any fp32 target, else (LLMs) the highest-precision GGUF."""

    def measured(t):
        return t["status"] in ("built", "cached") and t["latency"]

    for pick in (
        lambda t: t["recipe"] == "onnxruntime" and str(t["precision"]).lower() == "fp32",
        lambda t: str(t["precision"]).lower() in ("fp32", "f32"),
        lambda t: str(t["precision"]).upper() == "F16" and t["recipe"] in LLM_RECIPES,
        lambda t: str(t["precision"]).upper() == "BF16" and t["recipe"] in LLM_RECIPES,
    ):
        found = [t for t in targets if pick(t) and measured(t)]
        if found:
            return found[0]
    return None


def _quality_change(t: dict, ref: dict | None, metrics: dict) -> dict | None:
    """Accuracy change in points against the fp32 source where labels exist (measured in the same
    verification), else the agreement figure itself (1.0 = identical to the reference)."""
    acc, src = _num(metrics.get("accuracy")), _num(metrics.get("accuracy_source"))
    ver = metrics.get("verification") if isinstance(metrics.get("verification"), dict) else {}
    if acc is None and _num(ver.get("accuracy_intermediate")) is not None:
        acc, src = ver["accuracy_intermediate"], _num(ver.get("accuracy_onnxruntime"))
    if acc is not None and src is not None:
        delta = acc - src
        return {
            "value": round(delta, 6),
            "kind": "accuracy_pp",
            "text": f"{100 * delta:+.1f} pp accuracy ({100 * acc:.1f} %)",
        }
    q = {x["key"]: x for x in t["quality"]}
    for key, kind in (
        ("top1_agreement", "top-1"),
        ("verification_top1", "top-1"),
        ("argmax_agreement", "next-token"),
        ("cosine_min", "cosine"),
        ("verification_cosine", "cosine"),
    ):
        if key in q:
            value = q[key]["value"]
            text = f"cosine {value:.4f}" if kind == "cosine" else f"{kind} agreement {100 * value:.1f} %"
            return {"value": value, "kind": kind, "text": text}
    unmeasured = [x for x in t["quality"] if x["key"].startswith("not_measured:")]
    if unmeasured:
        return {"value": None, "kind": "not_measured", "text": unmeasured[0]["text"]}
    return None


def compare_model(model: str, targets: list[dict], source_size: int | None, metrics: dict[str, dict]) -> dict:
    ref = _reference(targets)
    rows = []
    for t in targets:
        size = (t["size"] or {}).get("bytes")
        row = {
            "target": t["name"],
            "status": t["status"],
            "recipe": t["recipe"],
            "precision": t["precision"],
            "device": t["device"],
            "size_bytes": size,
            "size_ratio": round(size / source_size, 4) if size and source_size else None,
            "p50_ms": (t["latency"] or {}).get("p50_ms"),
            "latency_ratio": None,
            "latency_note": None,
            "quality": _quality_change(t, ref, metrics.get(t["name"]) or {}),
            "remains": t["reason"] if t["status"] in ("deferred", "failed") else None,
            "is_reference": t is ref,
        }
        lat, rlat = t["latency"], (ref or {}).get("latency")
        if not lat:
            row["latency_note"] = t["latency_short"]
        elif not rlat:
            row["latency_note"] = "no reference latency for this model"
        elif lat.get("threads") != rlat.get("threads"):
            row["latency_note"] = f"not comparable: {lat.get('threads')} vs {rlat.get('threads')} threads"
        else:
            row["latency_ratio"] = round(lat["p50_ms"] / rlat["p50_ms"], 3) if rlat["p50_ms"] else None
            if lat["unstable"] or rlat["unstable"]:
                row["latency_note"] = "unstable: " + (lat["unstable"] or f"reference {rlat['unstable']}")
        rows.append(row)
    order = {"built": 1, "cached": 1, "deferred": 2, "failed": 3}
    rows.sort(key=lambda r: (not r["is_reference"], order.get(r["status"], 4), r["target"]))
    return {
        "model": model,
        "source_bytes": source_size,
        "reference": ref["name"] if ref else None,
        "reference_what": (f"{ref['name']} ({ref['recipe']} {ref['precision']})" if ref else None),
        "rows": rows,
    }


def build_report(
    project_name: str,
    version: str,
    results: dict[str, dict],
    target_models: dict[str, str],
    target_settings: dict[str, dict],
    model_sources: dict[str, Path],
    generated: str,
    model_info: dict[str, dict] | None = None,
    bundles_dir: Path | None = None,
) -> dict:
    """The whole report as JSON-able data; render_html() draws exactly this."""
    host = hostinfo.snapshot()
    targets = {
        name: target_figures(
            name, results[name], target_models.get(name), target_settings.get(name) or {}, host
        )
        for name in sorted(results)
    }
    deployment = read_json_file(bundles_dir / "deployment.json") if bundles_dir else None
    index = read_json_file(bundles_dir / "index.json") if bundles_dir else None
    for name, t in targets.items():
        t["deployment"] = deployment_figures(name, results[name], bundles_dir, deployment, index)
    hosts = []
    for t in targets.values():
        h = (t["latency"] or {}).get("host")
        if h and {k: h.get(k) for k in ("cpu", "cores")} not in [
            {k: x.get(k) for k in ("cpu", "cores")} for x in hosts
        ]:
            hosts.append(h)
    loads = [
        t["latency"]["host"]["load_1m"]
        for t in targets.values()
        if t["latency"] and t["latency"].get("host") and _num(t["latency"]["host"].get("load_1m")) is not None
    ]
    models = {}
    for model in sorted({m for m in target_models.values() if m} | set()):
        members = [t for t in targets.values() if t["model"] == model]
        if members:
            src = model_sources.get(model)
            models[model] = compare_model(
                model, members, source_bytes(src) if src else None, {n: _metrics(results[n]) for n in results}
            )
            models[model]["description"] = (model_info or {}).get(model, {}).get("description")
    unassigned = [t["name"] for t in targets.values() if not t["model"]]
    return {
        "project": project_name,
        "version": version,
        "generated": generated,
        "report_host": host,
        "measured_on": hosts,
        "load_at_measurement": {"min": min(loads), "max": max(loads)} if loads else None,
        "busy_host": bool(loads and hosts and max(loads) > min(h.get("cores") or 1e9 for h in hosts)),
        "targets_without_host": sorted(
            t["name"] for t in targets.values() if t["latency"] and not t["latency"]["host_known"]
        ),
        "trust_rules": {
            "unstable_if_p95_over_p50": SPREAD_LIMIT,
            "p95_min_runs": P95_MIN_RUNS,
            "p99_min_runs": P99_MIN_RUNS,
        },
        # no target is ever skipped; the key stays (always 0) for scripts reading `report --json`
        "counts": {
            **{
                s: sum(t["status"] == s for t in targets.values())
                for s in ("built", "cached", "deferred", "failed")
            },
            "skipped": 0,
        },
        "models": models,
        "targets": targets,
        "unassigned": unassigned,
        "deployment_manifest": (
            {
                "file": "deployment.json",
                "expires": _text(deployment.get("expires")),
                "generated": _text(deployment.get("generated")),
                "signed": (bundles_dir / "deployment.json.sig").is_file(),
                "targets": len(deployment.get("targets") or {})
                if isinstance(deployment.get("targets"), dict)
                else 0,
            }
            if deployment
            else None
        ),
        "bundle_index": (
            {
                "file": "index.json",
                "expires": _text(index.get("expires")),
                "signed": (bundles_dir / "index.json.sig").is_file(),
                "bundles": len(index["bundles"]) if isinstance(index.get("bundles"), list) else 0,
            }
            if index
            else None
        ),
    }

"""`edgebuild report`: one self-contained HTML page (inline CSS and SVG; no scripts, no network) that
answers "which artifact do I ship to each device?": per model, every target against the fp32
reference (size, latency, accuracy change, status) with a size-against-latency chart; then each
target's own figures, whatever its runtime, with the trust they deserve (runs, threads, host load,
unstable latencies flagged). It draws the data of report_data.build_report, nothing else."""

from __future__ import annotations

import html

from edgebuild.report_chart import fmt_bytes, fmt_ms, size_latency_chart

esc = html.escape

CSS = """
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0 auto;
       padding: 16px 20px 40px; max-width: 1200px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 6px; }
h3 { font-size: 15px; margin: 0 0 4px; } small, .muted { color: #5b5b63; }
code { font-size: 12px; overflow-wrap: anywhere; }
.lead { margin: 4px 0 10px; }
dl.trust { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0;
           padding: 8px 12px; background: #f5f6f8; border-radius: 6px; }
dl.trust dt { font-weight: 600; } dl.trust dd { margin: 0; overflow-wrap: anywhere; }
nav.models a { margin-right: 12px; }
table.cmp { width: 100%; table-layout: fixed; border-collapse: collapse; margin: 8px 0 12px; }
table.cmp th, table.cmp td { padding: 5px 6px; border-bottom: 1px solid #ddd; text-align: left;
                             vertical-align: top; overflow-wrap: anywhere; }
table.cmp th { background: #eef0f3; font-weight: 600; font-size: 13px; }
table.cmp col.c-target { width: 14%; } table.cmp col.c-runtime { width: 16%; } table.cmp col.c-status { width: 9%; }
table.cmp col.c-size, table.cmp col.c-sratio, table.cmp col.c-lat { width: 9%; }
table.cmp col.c-lratio { width: 12%; } table.cmp col.c-quality { width: 22%; }
table.cmp tr.reference td { background: #f7fbf7; }
table.cmp tr.remains td { border-top: 0; padding-top: 0; color: #6b4a12; font-size: 13px; }
tr.has-remains td { border-bottom: 0; }
.num { font-variant-numeric: tabular-nums; }
.badge { display: inline-block; white-space: nowrap; padding: 0 6px; border-radius: 9px; font-size: 12px; font-weight: 600;
         color: #fff; background: #777; }
.st-built, .st-cached { background: #2f7d4a; } .st-deferred { background: #b86e12; } .st-failed { background: #b0413e; }
.flag { color: #9a3412; font-weight: 600; } table.cmp .flag { white-space: nowrap; }
.chart-wrap { max-width: 660px; }
svg.chart { display: block; width: 100%; height: auto; }
svg .plot { fill: #fbfbfc; stroke: #ccc; } svg .grid { stroke: #e6e6e9; } svg .leader { stroke: #999; }
svg .tick { font-size: 11px; fill: #555; } svg .axis { font-size: 12px; fill: #333; }
svg .plabel { font-size: 11px; fill: #222; }
svg .pnum { display: none; font-size: 22px; font-weight: 700; fill: #222; }
ol.chart-key { display: none; margin: 4px 0 0; padding-left: 22px; font-size: 13px; }
ul.off-chart { margin: 4px 0 0; padding-left: 18px; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 330px), 1fr)); gap: 12px; }
article.target { border: 1px solid #d6d8dc; border-radius: 8px; padding: 10px 12px; min-width: 0; }
article.target dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 10px; margin: 6px 0 0; }
article.target dt { color: #5b5b63; } article.target dd { margin: 0; overflow-wrap: anywhere; }
article.target p { margin: 2px 0; overflow-wrap: anywhere; }
p.remains { color: #6b4a12; font-size: 13px; }
@media (max-width: 720px) {
  body { padding: 10px 12px 30px; }
  table.cmp, table.cmp tbody, table.cmp tr, table.cmp td { display: block; width: 100%; }
  table.cmp colgroup, table.cmp thead { display: none; }
  table.cmp tr { border: 1px solid #d6d8dc; border-radius: 8px; margin: 0 0 10px; padding: 6px 8px; }
  table.cmp tr.has-remains { border-bottom: 0; border-radius: 8px 8px 0 0; margin-bottom: 0; }
  table.cmp tr.remains { border-top: 0; border-radius: 0 0 8px 8px; padding-top: 0; }
  table.cmp td { border: 0; padding: 2px 0; display: grid; grid-template-columns: 38% minmax(0, 1fr); gap: 8px;
                 justify-items: start; }
  table.cmp td::before { content: attr(data-label); color: #5b5b63; }
  table.cmp tr.remains td { display: block; }
  table.cmp tr.remains td::before { content: none; }
  dl.trust { grid-template-columns: 1fr; }
  /* the chart shrinks to half size on a phone: numbers by the points, their key below in HTML */
  svg .plabel, svg .leader { display: none; } svg .pnum { display: inline; }
  svg .tick { font-size: 18px; } svg .axis { font-size: 20px; } svg .axis-y { display: none; }
  ol.chart-key { display: block; }
}
@media print {
  @page { size: A4; margin: 12mm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  article.target, table.cmp tbody, svg.chart, dl.trust { break-inside: avoid; }
  h2 { break-after: avoid; }
  table.cmp { font-size: 8pt; } table.cmp th { font-size: 8pt; }
  .badge { font-size: 7pt; padding: 0 4px; }
  .cards { grid-template-columns: 1fr 1fr; }
  a { color: inherit; text-decoration: none; }
}
"""


def _badge(status: str) -> str:
    return f'<span class="badge st-{esc(status)}">{esc(status)}</span>'


def _ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def _latency_text(lat: dict) -> str:
    parts = [f"p50 {fmt_ms(lat['p50_ms'])}"]
    if lat.get("p95_ms") is not None:
        parts.append(f"p95 {fmt_ms(lat['p95_ms'])}")
    if lat.get("p99_ms") is not None:
        parts.append(f"p99 {fmt_ms(lat['p99_ms'])}")
    return " · ".join(parts)


def _trust_text(lat: dict) -> str:
    bits = []
    if lat.get("runs") is not None:
        bits.append(f"{lat['runs']} runs")
    if lat.get("threads"):
        bits.append(f"{lat['threads']} thread{'s' if lat['threads'] != 1 else ''}")
    host = lat.get("host") or {}
    if host.get("load_1m") is not None:
        bits.append(f"load {host['load_1m']:.1f} on {host.get('cores', '?')} cores")
    elif not lat.get("host_known"):
        bits.append("host load not recorded")
    if lat.get("p99_ms") is None and lat.get("runs") is not None:
        bits.append(f"no p99 ({lat['runs']} runs < 100)")
    if lat.get("stopped"):
        bits.append(lat["stopped"])
    return ", ".join(bits)


def _comparison(model: dict, targets: dict) -> str:
    rows = []
    head = (
        "target",
        "runtime · device",
        "status",
        "size",
        "size × source",
        "latency p50",
        "latency × ref",
        "quality vs source",
    )
    for row in model["rows"]:
        t = targets[row["target"]]
        runtime = " ".join(x for x in (t["recipe"], str(t["precision"] or "")) if x) + (
            f" · {t['device']}" if t["device"] else ""
        )
        lat = t["latency"]
        if lat:
            lat_cell = f'<span class="num">{fmt_ms(lat["p50_ms"])}</span>'
            if lat["unstable"]:
                lat_cell += ' <span class="flag" title="' + esc(lat["unstable"]) + '">⚠ unstable</span>'
        else:
            lat_cell = f'<span class="muted">{esc(row["latency_note"] or "not measured")}</span>'
        if row["is_reference"]:
            lratio = '<span class="muted">reference</span>'
        elif row["latency_ratio"] is not None:
            lratio = f'<span class="num">{_ratio(row["latency_ratio"])}</span>'
            if row["latency_note"]:
                lratio += f' <span class="flag">{esc(row["latency_note"].split(":")[0])}</span>'
        else:
            lratio = f'<span class="muted">{esc(row["latency_note"] or "—")}</span>' if lat else "—"
        quality = row["quality"]["text"] if row["quality"] else "—"
        cells = (
            f'<a href="#target-{esc(t["name"])}">{esc(t["name"])}</a>',
            esc(runtime),
            _badge(row["status"]),
            f'<span class="num">{fmt_bytes(row["size_bytes"])}</span>',
            f'<span class="num">{_ratio(row["size_ratio"]) or "—"}</span>',
            lat_cell,
            lratio,
            esc(quality),
        )
        classes = (
            [f"st-row-{row['status']}"]
            + (["reference"] if row["is_reference"] else [])
            + (["has-remains"] if row["remains"] else [])
        )
        rows.append("<tbody>")  # one per target: its row and its "what remains" line stay together
        rows.append(
            f'<tr class="{" ".join(classes)}" data-target="{esc(t["name"])}" data-status="{esc(row["status"])}">'
            + "".join(f'<td data-label="{h}"><div>{c}</div></td>' for h, c in zip(head, cells))
            + "</tr>"
        )
        if row["remains"]:
            rows.append(
                f'<tr class="remains" data-remains-for="{esc(t["name"])}"><td colspan="{len(head)}">'
                f"<b>what remains:</b> {esc(row['remains'])}</td></tr>"
            )
        rows.append("</tbody>")
    cols = "".join(
        f'<col class="c-{c}">'
        for c in ("target", "runtime", "status", "size", "sratio", "lat", "lratio", "quality")
    )
    return (
        f'<table class="cmp" id="cmp-{esc(model["model"])}"><colgroup>{cols}</colgroup><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + f"</tr></thead>{''.join(rows)}</table>"
    )


def _chart(model: dict, targets: dict) -> str:
    points, off = [], []
    for row in model["rows"]:
        t = targets[row["target"]]
        lat = t["latency"]
        if lat and row["size_bytes"]:
            note = row["quality"]["text"].split(" (")[0] if row["quality"] else ""
            points.append(
                {
                    "label": t["name"],
                    "latency_ms": lat["p50_ms"],
                    "size_bytes": row["size_bytes"],
                    "note": note,
                    "status": row["status"],
                    "unstable": bool(lat["unstable"]),
                    "reference": row["is_reference"],
                }
            )
        else:
            why = "no size" if not row["size_bytes"] else (row["latency_note"] or "no latency")
            off.append(f"<li><b>{esc(t['name'])}</b>: {esc(why)}</li>")
    svg = size_latency_chart(points, f"chart-{model['model']}", f"{model['model']}: size against latency")
    if not svg:
        return (
            f'<p class="muted">No chart: fewer than two targets of {esc(model["model"])} have both a size and '
            f"a latency.</p>"
        )
    key = "".join(
        f"<li>{esc(p['label'])}{' · ' + esc(p['note']) if p['note'] else ''}"
        f"{' (unstable)' if p['unstable'] else ''}</li>"
        for p in points
        if p["latency_ms"] and p["size_bytes"]
    )
    legend = (
        f'<ol class="chart-key">{key}</ol><p class="muted">Lower left is smaller and faster. Square: the latency reference; hollow: '
        "unstable latency (see its card); label: quality against the source model.</p>"
    )
    extra = f'<p class="muted">Not on the chart:</p><ul class="off-chart">{"".join(off)}</ul>' if off else ""
    return f'<div class="chart-wrap">{svg}{legend}{extra}</div>'


def _card(t: dict) -> str:
    rows = []
    size = t["size"]
    rows.append(
        (
            "size",
            "fig-size",
            f"{fmt_bytes(size['bytes'])} <small>{esc(size['what'])}</small>"
            if size
            else '<span class="muted">no size recorded</span>',
        )
    )
    for q in t["quality"]:
        cls = "fig-quality" if q["value"] is not None else "fig-note"
        rows.append((q["label"], cls, esc(q["text"])))
    lat = t["latency"]
    if lat:
        text = _latency_text(lat) + f" <small>{esc(_trust_text(lat))}</small>"
        if lat["unstable"]:
            text += f'<br><span class="flag">⚠ unstable: {esc(lat["unstable"])}</span>'
        rows.append(("latency", "fig-latency" + (" unstable" if lat["unstable"] else ""), text))
    else:
        rows.append(("latency", "fig-latency-none", f'<span class="muted">{esc(t["latency_note"])}</span>'))
    cov = t["coverage"]
    if cov:
        label = {
            "edgetpu": "Edge TPU",
            "coreml": "Core ML",
            "tensorrt": "TensorRT",
            "gguf": "GGUF",
            "onnxruntime": "ORT kernels",
            "tflite": "TFLite ops",
        }.get(str(cov["device"]), "on target")
        shares = [
            f"{100 * cov['ops_share']:.0f} % of ops" if cov["ops_share"] is not None else "",
            f"{100 * cov['macs_share']:.0f} % of MACs" if cov["macs_share"] is not None else "",
        ]
        text = ", ".join(s for s in shares if s) or esc(cov.get("summary") or "")
        if cov.get("mil_ops"):
            text = f"{cov['mil_ops']} MIL ops" + (f"; {text}" if text and "MIL" not in text else "")
        if cov["ops_share"] is not None or cov["macs_share"] is not None:
            text += f" <small>{esc(str(cov['source']))}</small>"
        rows.append((label, "fig-coverage", text))
    for extra in t["extras"]:
        rows.append((extra["label"], "fig-extra", esc(extra["text"])))
    dep = t.get("deployment") or {}
    if t["bundle"]:
        size = f" <small>{fmt_bytes(dep['bundle_bytes'])}</small>" if dep.get("bundle_bytes") else ""
        rows.append(("bundle", "fig-bundle", f"<code>{esc(t['bundle'])}</code>{size}"))
    if dep.get("in_manifest"):
        bits = [
            f"version {dep['version']}" if dep.get("version") else "",
            f"needs {dep['min_memory_mb']:.0f} MB memory" if dep.get("min_memory_mb") else "",
            f"accelerator {dep['accelerator']}" if dep.get("accelerator") else "",
        ]
        rows.append(("deployment", "fig-deployment", esc(", ".join(b for b in bits if b) or "listed")))
    for delta in dep.get("deltas") or []:
        ratio = f" ({100 * delta['ratio']:.0f} % of the bundle)" if delta.get("ratio") is not None else ""
        rows.append((f"delta from {delta['from']}", "fig-delta", esc(fmt_bytes(delta["bytes"]) + ratio)))
    what = " · ".join(
        esc(str(x))
        for x in (t["recipe"], t["precision"], t["device"], t["model"] and f"model {t['model']}")
        if x
    )
    body = "".join(f'<dt>{esc(label)}</dt><dd class="{cls}">{value}</dd>' for label, cls, value in rows)
    remains = (
        f'<p class="remains"><b>{"what remains" if t["status"] == "deferred" else "why"}:</b> '
        f"{esc(t['reason'])}</p>"
        if t["reason"]
        else ""
    )
    return (
        f'<article class="target" id="target-{esc(t["name"])}" data-status="{esc(t["status"])}">'
        f'<h3>{esc(t["name"])} {_badge(t["status"])}</h3><p class="muted">{what}</p><dl>{body}</dl>{remains}'
        f"</article>"
    )


def _trust(data: dict) -> str:
    hosts = data["measured_on"] or []
    host_text = "; ".join(f"{h.get('cpu')} · {h.get('cores')} cores · {h.get('system', '')}" for h in hosts)
    if not host_text:
        h = data["report_host"]
        host_text = (
            f"not recorded with the figures; this report was written on {h['cpu']} · {h['cores']} cores"
        )
    load = data["load_at_measurement"]
    load_text = (
        f"{load['min']:.1f}–{load['max']:.1f} (1-minute load average when each latency was measured)"
        if load
        else "not recorded"
    )
    cores = min((h.get("cores") or 0 for h in hosts), default=0)
    busy = bool(load and cores and load["max"] > cores)
    rules = data["trust_rules"]
    load_html = esc(load_text) + (
        f'<br><span class="flag">⚠ load above the {cores} cores: these latencies ran on '
        f"a busy host and are slower and noisier than on an idle one</span>"
        if busy
        else ""
    )
    rows = [
        ("Measured on", esc(host_text)),
        ("Host load", load_html),
        (
            "Latency",
            esc(
                f"wall time per call after warm-up, on the build host; each figure gives its runs and "
                f"threads. Flagged unstable when p95 is over {rules['unstable_if_p95_over_p50']:g}x p50 "
                f"or the threads exceed the free cores; p95 needs {rules['p95_min_runs']} runs, "
                f"p99 {rules['p99_min_runs']}."
            ),
        ),
    ]
    if data["targets_without_host"]:
        rows.append(
            (
                "No host record",
                esc(
                    ", ".join(data["targets_without_host"])
                    + ": built before hosts were recorded; rebuild to get them"
                ),
            )
        )
    shipped = []
    for key, label in (("bundle_index", "bundle index"), ("deployment_manifest", "deployment manifest")):
        doc = data.get(key)
        if doc:
            shipped.append(
                f"{label} bundles/{doc['file']} ({'signed' if doc['signed'] else 'NOT signed'}"
                + (f", expires {doc['expires']}" if doc.get("expires") else "")
                + ")"
            )
    rows.append(
        (
            "Shipping",
            esc(
                "; ".join(shipped)
                if shipped
                else "no bundle index or deployment manifest yet (`edgebuild bundle` / a release writes them)"
            ),
        )
    )
    rows.append(
        (
            "Quality",
            "accuracy change is against the fp32 source model on the model's evaluation data; "
            "agreement and cosine compare each artifact's outputs with the source's on the same inputs",
        )
    )
    return '<dl class="trust">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def render_html(data: dict) -> str:
    targets = data["targets"]
    counts = ", ".join(f"{n} {s}" for s, n in data["counts"].items() if n)
    sections = []
    for name, model in data["models"].items():
        ref = (
            f"latency against <b>{esc(model['reference_what'])}</b>"
            if model["reference"]
            else "no measured fp32 target for latency ratios"
        )
        src = fmt_bytes(model["source_bytes"]) if model["source_bytes"] else "unknown size"
        desc = f" <small>{esc(model['description'])}</small>" if model.get("description") else ""
        sections.append(
            f'<section class="model" id="model-{esc(name)}"><h2>{esc(name)}{desc}</h2>'
            f'<p class="muted">Size against the source model ({src}); {ref} (same host, same threads).</p>'
            f"{_comparison(model, targets)}{_chart(model, targets)}</section>"
        )
    nav = " ".join(f'<a href="#model-{esc(n)}">{esc(n)}</a>' for n in data["models"])
    cards = "".join(_card(t) for t in sorted(targets.values(), key=lambda t: (t["model"] or "~", t["name"])))
    title = f"edgebuild report: {data['project']} {data['version']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{esc(title)}</h1>
<p class="lead">Which artifact to ship to each device: {len(targets)} targets ({esc(counts)}), from the last build
of each; report written {esc(data["generated"])}.</p>
{_trust(data)}
<nav class="models">Models: {nav}</nav></header>
<main>
{"".join(sections)}
<section id="targets"><h2>Every target's figures</h2>
<div class="cards">{cards}</div></section>
</main>
</body></html>
"""

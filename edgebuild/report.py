"""`edgebuild report`: one self-contained HTML page (inline CSS and SVG, no scripts, no network) with
a table of every target and charts of size, latency percentiles, accuracy drop and coverage."""
from __future__ import annotations

import html
from datetime import datetime, timezone

COLOURS = ("#3b6ea8", "#e0913a", "#4f9a5b", "#b0413e")
STATUS_COLOURS = {"built": "#4f9a5b", "cached": "#4f9a5b", "deferred": "#e0913a", "failed": "#b0413e"}


def _fmt(value, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def bar_chart(title: str, rows: list[tuple[str, list[float | None]]], series: list[str], unit: str,
              chart_id: str) -> str:
    """Horizontal grouped bars as inline SVG; a missing value is drawn as 'n/a'."""
    values = [v for _, vs in rows for v in vs if v is not None]
    if not values:
        return f'<section class="chart" id="{chart_id}"><h3>{html.escape(title)}</h3><p class="none">no figures yet</p></section>'
    top = max(max(values), 1e-12)
    bar_h, gap, label_w, width = 14, 10, 170, 640
    group_h = bar_h * len(series) + gap
    height = group_h * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'aria-label="{html.escape(title)}">']
    for i, (label, vs) in enumerate(rows):
        y0 = 10 + i * group_h
        parts.append(f'<text x="0" y="{y0 + bar_h * len(series) / 2 + 4}" class="label">{html.escape(label)}</text>')
        for j, v in enumerate(vs):
            y = y0 + j * bar_h
            if v is None:
                parts.append(f'<text x="{label_w}" y="{y + bar_h - 3}" class="na">n/a</text>')
                continue
            w = max(1.0, (width - label_w - 90) * v / top)
            parts.append(f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                         f'fill="{COLOURS[j % len(COLOURS)]}"><title>{html.escape(label)} {series[j]}: '
                         f'{v:.4g}{unit}</title></rect>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}" class="value">{v:.4g}{unit}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{COLOURS[j % len(COLOURS)]}"></i>{html.escape(s)}</span>'
                     for j, s in enumerate(series)) if len(series) > 1 else ""
    return (f'<section class="chart" id="{chart_id}"><h3>{html.escape(title)}</h3>{legend}'
            f'{"".join(parts)}</section>')


def render(project_name: str, version: str, results: dict[str, dict]) -> str:
    names = sorted(results)
    rows_html = []
    for name in names:
        r = results[name]
        m = r.get("metrics") or {}
        lat = m.get("latency") or {}
        cov = r.get("coverage") or {}
        colour = STATUS_COLOURS.get(r["status"], "#777")
        rows_html.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                html.escape(name), html.escape(r.get("recipe", "")), html.escape(r.get("device") or ""),
                f'<b style="color:{colour}">{html.escape(r["status"])}</b>',
                _fmt(m.get("size_bytes") and m["size_bytes"] / 1024, " KiB", 1),
                _fmt(lat.get("p50_ms"), " ms"), _fmt(lat.get("p95_ms"), " ms"), _fmt(lat.get("p99_ms"), " ms"),
                _fmt(lat.get("threads")), _fmt(m.get("accuracy")), _fmt(m.get("accuracy_drop")),
                _fmt(m.get("worst_class_drop")), _fmt(m.get("top1_agreement")),
                _fmt(cov.get("accelerated_share") and 100 * cov["accelerated_share"], " %", 1),
                html.escape(r.get("bundle") or "—"), html.escape(r.get("reason") or ""))) + "</tr>")

    def metric(name, key):
        return (results[name].get("metrics") or {}).get(key)

    def latency(name, key):
        return ((results[name].get("metrics") or {}).get("latency") or {}).get(key)

    charts = [
        bar_chart("Artifact size", [(n, [metric(n, "size_bytes") and metric(n, "size_bytes") / 1024]) for n in names],
                  ["size"], " KiB", "chart-size"),
        bar_chart("Latency on the build host", [(n, [latency(n, k) for k in ("p50_ms", "p95_ms", "p99_ms")])
                                                for n in names], ["p50", "p95", "p99"], " ms", "chart-latency"),
        bar_chart("Accuracy drop against the source model", [(n, [metric(n, "accuracy_drop"),
                                                                  metric(n, "worst_class_drop")]) for n in names],
                  ["overall", "worst class"], "", "chart-accuracy"),
        bar_chart("Operator coverage (share on the accelerator)",
                  [(n, [(results[n].get("coverage") or {}).get("accelerated_share")]) for n in names],
                  ["accelerated share"], "", "chart-coverage"),
    ]
    deferred = [(n, results[n].get("reason") or "") for n in names if results[n]["status"] in ("deferred", "failed")]
    deferred_html = "".join(f"<li><b>{html.escape(n)}</b> ({html.escape(results[n]['status'])}): {html.escape(why)}</li>"
                            for n, why in deferred) or "<li>none</li>"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = ("target", "recipe", "device", "status", "size", "p50", "p95", "p99", "threads", "accuracy",
            "acc. drop", "worst class drop", "top-1 agreement", "coverage", "bundle", "reason")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>edgebuild report: {html.escape(project_name)} {html.escape(version)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 12px 0 24px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 24px; }}
svg {{ display: block; }}
.chart h3 {{ margin: 8px 0; font-size: 15px; }}
.label, .value, .na {{ font-size: 12px; fill: #333; }}
.na {{ fill: #999; }}
.key {{ margin-right: 12px; font-size: 12px; }} .key i {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
</style></head>
<body>
<h1>edgebuild report: {html.escape(project_name)} {html.escape(version)}</h1>
<p>{len(names)} targets, from the last build of each ({generated}). Latency is measured on the build
host after warm-up; accuracy drop is source model minus artifact on the evaluation set.</p>
<table id="targets"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>
<tbody>{"".join(rows_html)}</tbody></table>
<h2>Charts</h2>
<div class="charts">{"".join(charts)}</div>
<h2>Deferred and failed targets</h2>
<ul id="deferred">{deferred_html}</ul>
</body></html>
"""

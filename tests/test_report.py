"""`edgebuild report`: a self-contained page, checked as rendered by headless Chromium at desktop and
phone widths through the page's own layout, and its `--json` data.

Two inputs: the session's real onnxruntime demo build (built_demo), and the results of a real build
of the whole demo (12 targets: ORT, TFLite, Edge TPU, Core ML, TensorRT deferred, GGUF), recorded
in tests/data/report_demo_results.json with long node lists cut, because building all 12 here would
take minutes; the report only reads these files."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ORT_TARGETS, REPO, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RECORDED = Path(__file__).parent / "data" / "report_demo_results.json"
DIGITS_TARGETS = {
    "cpu-fp32",
    "cpu-fp16",
    "cpu-int8",
    "coral",
    "tflite-fp16",
    "iphone",
    "jetson-orin-nano",
    "t4-fp16",
}
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)

# Measures the report from outside: the report is loaded into a same-origin iframe (srcdoc) of the
# given width, so its media queries see that width; the report itself carries no script.
MEASURE = """
document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument, vw = this.contentWindow.innerWidth, over = [];
  d.querySelectorAll('body *').forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 0.5) over.push(e.tagName + (e.id ? '#' + e.id : ''));
  });
  var cards = [].map.call(d.querySelectorAll('article.target'), function (a) {
    var size = a.querySelector('dd.fig-size');
    return {name: a.id.replace('target-', ''), status: a.dataset.status,
            size: size ? size.textContent : '', quality: a.querySelectorAll('dd.fig-quality').length,
            shown: a.getBoundingClientRect().height > 0};
  });
  var cmp = [].map.call(d.querySelectorAll('#cmp-digits tbody tr[data-target]'), function (tr) {
    var cells = {};
    [].forEach.call(tr.querySelectorAll('td'), function (td) { cells[td.dataset.label] = td.textContent; });
    return {target: tr.dataset.target, cells: cells, shown: tr.getBoundingClientRect().height > 0};
  });
  var out = document.createElement('pre'); out.id = 'measure';
  out.textContent = JSON.stringify({doc: d.documentElement.scrollWidth, vw: vw, over: over.slice(0, 20),
                                    cards: cards, cmp: cmp});
  document.body.appendChild(out);
});
"""


def measure(report: Path, width: int, tmp_path: Path) -> dict:
    page = tmp_path / f"measure-{width}.html"
    page.write_text(
        f'<!DOCTYPE html><html><body style="margin:0"><iframe id="f" style="width:{width}px;'
        f'height:900px;border:0" srcdoc="{html.escape(report.read_text(), quote=True)}"></iframe>'
        f"<script>{MEASURE}</script></body></html>"
    )
    dom = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / f'profile-{width}'}",
            "--window-size=1400,1000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom, re.S)
    assert found, f"the measuring page did not report (chromium output: {dom[-300:]!r})"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report(built_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = run_cli(built_demo, "report", "--out", str(out))
    assert result.rc == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory) -> Path:
    """The demo project (targets.toml, models) with the recorded results of a real build of all 12 targets."""
    project = tmp_path_factory.mktemp("full") / "demo"
    project.mkdir()
    shutil.copyfile(REPO / "targets.toml", project / "targets.toml")
    shutil.copytree(REPO / "models", project / "models")
    shutil.copytree(REPO / "data", project / "data")
    results = project / ".edgebuild" / "state" / "results"
    results.mkdir(parents=True)
    for name, data in json.loads(RECORDED.read_text()).items():
        (results / f"{name}.json").write_text(json.dumps(data))
    return project


@pytest.fixture(scope="module")
def full_report(full_demo, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("full-report") / "report.html"
    result = run_cli(full_demo, "report", "--out", str(out), "--json")
    assert result.rc == 0, result.stderr
    return out, result.json


def test_report_is_self_contained(report, full_report):
    for page in (report, full_report[0]):
        text = page.read_text()
        assert not re.search(r"""(src|href)=["']?https?:""", text)  # nothing fetched from the network
        assert "<script" not in text.lower()
    text = report.read_text()
    for target in ORT_TARGETS:
        assert f'id="target-{target}"' in text and f'data-target="{target}"' in text


def test_real_build_records_the_host_with_each_latency(report, built_demo):
    """built_demo was measured now: every latency carries the host (CPU, cores, load) it ran on."""
    data = run_cli(built_demo, "report", "--out", str(report.parent / "again.html"), "--json").json
    assert data["targets_without_host"] == []
    assert data["measured_on"] and data["measured_on"][0]["cores"] >= 1
    assert data["load_at_measurement"] is not None
    for target in ORT_TARGETS:
        lat = data["targets"][target]["latency"]
        assert lat["runs"] >= 20 and lat["threads"] == 1 and lat["host"]["cpu"]
    text = report.read_text()
    assert "Measured on" in text and "cores" in text and "load" in text


def test_json_compares_every_digits_target_with_fp32(full_report):
    _, data = full_report
    digits = data["models"]["digits"]
    assert digits["reference"] == "cpu-fp32"
    rows = {r["target"]: r for r in digits["rows"]}
    assert set(rows) == DIGITS_TARGETS
    for name, row in rows.items():
        assert row["size_ratio"] is not None and 0 < row["size_ratio"] < 1.5, name
        assert row["quality"] is not None, name
    assert rows["cpu-fp32"]["latency_ratio"] == 1.0 and rows["cpu-fp32"]["is_reference"]
    for name in ("cpu-fp16", "cpu-int8", "tflite-fp16", "coral"):
        assert rows[name]["latency_ratio"] is not None, name
    assert rows["iphone"]["latency_ratio"] is None and "macOS" in rows["iphone"]["latency_note"]
    assert rows["cpu-int8"]["size_ratio"] < rows["cpu-fp16"]["size_ratio"] < rows["cpu-fp32"]["size_ratio"]
    assert all(rows[n]["remains"] for n in ("coral", "jetson-orin-nano", "t4-fp16"))
    assert rows["cpu-fp16"]["remains"] is None


def test_json_has_every_runtimes_own_figures(full_report):
    targets = full_report[1]["targets"]
    iphone = targets["iphone"]
    assert iphone["size"]["what"] == "Core ML package" and iphone["size"]["bytes"] > 10_000
    assert {q["key"] for q in iphone["quality"]} >= {"verification_top1", "verification_cosine"}
    assert "macOS" in iphone["latency_note"]
    coral = targets["coral"]
    assert coral["coverage"]["ops_share"] == 1.0 and coral["coverage"]["macs_share"] == 1.0
    assert coral["coverage"]["source"] == "prediction"
    for name in ("laptop-f16", "laptop-q8", "laptop-q4", "embedder-q8"):
        labels = {e["label"] for e in targets[name]["extras"]}
        assert {"bits per weight", "tokens/s (prompt)"} <= labels, name
    bpw = {
        n: float(next(e["text"] for e in targets[n]["extras"] if e["label"] == "bits per weight"))
        for n in ("laptop-f16", "laptop-q8", "laptop-q4")
    }
    assert bpw["laptop-q4"] < bpw["laptop-q8"] < bpw["laptop-f16"]


def test_implausible_latency_spread_is_flagged_not_presented(full_report):
    """The recorded GGUF latencies have p95 tens of times p50 (llama.cpp threads on a busy 2-core
    host) and 50 runs: flagged unstable with the reason, and no p99 shown as a percentile."""
    page, data = full_report
    for name in ("laptop-f16", "laptop-q8", "laptop-q4"):
        lat = data["targets"][name]["latency"]
        assert lat["runs"] < 100 and lat["p99_ms"] is None
        assert lat["unstable"] and "p95 is" in lat["unstable"], name
        row = next(r for r in data["models"]["tinyllama"]["rows"] if r["target"] == name)
        assert row["is_reference"] or "unstable" in (row["latency_note"] or "")
    card = page.read_text().split('id="target-laptop-q4"', 1)[1].split("</article>", 1)[0]
    assert "unstable" in card and "p99" not in card.split("runs", 1)[0]
    cpu = data["targets"]["cpu-fp32"]["latency"]  # 100 steady runs: a trusted figure with its p99
    assert cpu["unstable"] is None and cpu["p99_ms"] is not None
    embedder = data["targets"]["embedder-q8"]["latency"]  # 2 llama.cpp threads, no free core
    assert embedder["threads"] == 2 and "free" in embedder["unstable"]
    # recorded while the 2-core host had a load near 10: the header says so
    assert data["busy_host"] is True and "load above the 2 cores" in page.read_text()


def test_malformed_results_still_render(full_demo, tmp_path):
    """Results files are written by many recipes and may be hand-edited: odd values are shown as
    absent, never a crash."""
    project = tmp_path / "odd"
    shutil.copytree(full_demo, project)
    results = project / ".edgebuild" / "state" / "results"
    (results / "cpu-fp16.json").write_text(
        json.dumps({"status": "built", "recipe": "onnxruntime", "metrics": "oops", "coverage": [1, 2]})
    )
    (results / "cpu-int8.json").write_text(
        json.dumps(
            {
                "status": "built",
                "metrics": {"latency": {"p50_ms": "fast", "host": "x"}, "accuracy": None, "size_bytes": -0.0},
            }
        )
    )
    (results / "coral.json").write_text("{not json")
    result = run_cli(project, "report", "--out", str(tmp_path / "r.html"), "--json")
    assert result.rc == 0, result.stderr
    assert result.json["targets"]["cpu-fp16"]["size"] is None
    assert "no size recorded" in (tmp_path / "r.html").read_text()


@needs_chromium
@pytest.mark.parametrize("width", [1280, 400])
def test_layout_fits_and_shows_every_figure(full_report, tmp_path, width):
    page, data = full_report
    m = measure(page, width, tmp_path)
    assert m["vw"] == width
    assert m["doc"] <= m["vw"], f"page is {m['doc']} px wide at {width} px: overflowing {m['over']}"
    assert m["over"] == [], f"elements past the right edge at {width} px: {m['over']}"
    built = [c for c in m["cards"] if c["status"] in ("built", "cached")]
    assert len(built) == sum(t["status"] in ("built", "cached") for t in data["targets"].values()) >= 9
    for card in built:
        assert card["shown"], card
        assert re.search(r"\d+(\.\d+)? (B|KiB|MiB|GiB)", card["size"]), card
        assert card["quality"] >= 1, card
    rows = {r["target"]: r for r in m["cmp"]}
    assert set(rows) == DIGITS_TARGETS
    for name, row in rows.items():
        assert row["shown"]
        assert re.fullmatch(r"[\d.]+x", row["cells"]["size × source"].strip()), row
    for name in ("cpu-fp16", "cpu-int8", "tflite-fp16"):
        assert re.search(r"[\d.]+x", rows[name]["cells"]["latency × ref"]), rows[name]


@needs_chromium
def test_renders_charts_and_prints_to_a4(full_report, tmp_path):
    page, _ = full_report
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    chart = dom.split('id="chart-digits"', 1)[1].split("</svg>", 1)[0]
    assert chart.count('class="point"') == 5  # ORT x3, TFLite, Edge TPU: the ones with a latency
    assert "(log scale)" not in chart or "µs" in chart
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", data)
    assert boxes and all(abs(float(w) - 595.9) < 2 and abs(float(h) - 842.9) < 2 for w, h in boxes), boxes[:3]


def test_bundle_sizes_deltas_and_deployment_manifest_are_shown(full_demo, tmp_path):
    """The bundle index and, once a release wrote it, bundles/deployment.json (per target: size,
    version, memory, deltas) reach the cards; both files are read as untrusted data."""
    project = tmp_path / "shipped"
    shutil.copytree(full_demo, project)
    bundles = project / "bundles"
    bundles.mkdir()
    (bundles / "deployment.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "project": "demo",
                "expires": "2027-02-25T00:00:00Z",
                "targets": {
                    "cpu-int8": {
                        "bundle": "demo-cpu-int8-1.0.0.tar.gz",
                        "size": 80000,
                        "version": "1.0.0",
                        "min_memory_mb": 110,
                        "accelerator": "cpu",
                        "deltas": [{"from": "0.9.0", "size": 12000}, {"from": "0.8.0", "size": "big"}],
                    },
                    "coral": "not a dict",
                },
            }
        )
    )
    (bundles / "index.json").write_text("[1, 2]")  # not an object: ignored, not a crash
    result = run_cli(project, "report", "--out", str(tmp_path / "r.html"), "--json")
    assert result.rc == 0, result.stderr
    data = result.json
    assert data["deployment_manifest"]["signed"] is False and data["bundle_index"] is None
    dep = data["targets"]["cpu-int8"]["deployment"]
    assert dep["bundle_bytes"] == 80000 and dep["min_memory_mb"] == 110
    assert dep["deltas"] == [{"from": "0.9.0", "bytes": 12000, "ratio": 0.15}]
    card = (tmp_path / "r.html").read_text().split('id="target-cpu-int8"', 1)[1].split("</article>", 1)[0]
    assert "delta from 0.9.0" in card and "15 % of the bundle" in card and "needs 110 MB memory" in card
    assert "deployment manifest bundles/deployment.json (NOT signed" in (tmp_path / "r.html").read_text()


def test_chart_uses_log_scales_when_values_span_decades():
    from edgebuild.report_chart import size_latency_chart

    points = [
        {"label": "int8", "latency_ms": 0.005, "size_bytes": 40_000, "note": "-0.2 pp", "status": "built"},
        {
            "label": "fp32",
            "latency_ms": 0.9,
            "size_bytes": 160_000,
            "note": "",
            "status": "built",
            "reference": True,
        },
        {
            "label": "gguf",
            "latency_ms": 45.0,
            "size_bytes": 3_000_000,
            "note": "",
            "status": "built",
            "unstable": True,
        },
    ]
    svg = size_latency_chart(points, "c", "t")
    assert "latency p50 on the build host (log scale)" in svg and "size (log)" in svg
    ticks = re.findall(r'class="tick"[^>]*>([^<]+)<', svg)
    assert {"1 µs", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms"} <= set(ticks), ticks
    assert svg.count('class="point"') == 3 and 'fill="none"' in svg  # the unstable one is hollow
    linear = size_latency_chart(
        [dict(points[0], latency_ms=0.01), dict(points[1], latency_ms=0.02)], "c", "t"
    )
    assert "(log scale)" not in linear
    assert size_latency_chart(points[:1], "c", "t") == ""  # one point compares nothing

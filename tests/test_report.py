"""`edgebuild report`: a self-contained page, checked as rendered by headless Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import ORT_TARGETS, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(built_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = run_cli(built_demo, "report", "--out", str(out))
    assert result.rc == 0, result.stderr
    return out


def test_report_is_self_contained(report):
    text = report.read_text()
    assert not re.search(r"""(src|href)=["']?https?:""", text)      # nothing fetched from the network
    assert "<script" not in text
    for target in ORT_TARGETS:
        assert f"<td>{target}</td>" in text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_chromium(report, tmp_path):
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          f"file://{report}"], capture_output=True, text=True, timeout=120).stdout
    rows = re.findall(r"<tr><td>([\w.-]+)</td>", dom)
    assert set(ORT_TARGETS) <= set(rows)
    for chart in ("chart-size", "chart-latency", "chart-accuracy", "chart-coverage"):
        section = dom.split(f'id="{chart}"', 1)[1].split("</section>", 1)[0]
        assert section.count("<rect") >= len(ORT_TARGETS), chart      # one bar (or more) per target
    latency = dom.split('id="chart-latency"', 1)[1].split("</section>", 1)[0]
    assert "p95" in latency and " ms" in latency
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}",
                    "--window-size=1400,1200", f"file://{report}"], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000       # a rendered page, not a blank one

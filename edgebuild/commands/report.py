"""`edgebuild report [--out FILE] [--json]`: an HTML page of every target's last build; with --json
the same content is also printed as data on stdout (for dashboards)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

from edgebuild import cli_options as opt
from edgebuild.errors import ConfigError
from edgebuild.fsutil import atomic_write_bytes
from edgebuild.project import load_project
from edgebuild.report import render_html
from edgebuild.report_data import build_report
from edgebuild.state import load_results


def run(args) -> int:
    project = load_project(args.project)
    results = {
        name: data
        for name, data in load_results(project.root).items()
        if name in project.targets and isinstance(data, dict)
    }
    if not results:
        raise ConfigError("no build results yet: run `edgebuild build` or `edgebuild all` first")
    missing = sorted(set(project.targets) - set(results))
    data = build_report(
        project.name,
        project.version,
        results,
        target_models={n: t.model for n, t in project.targets.items()},
        target_settings={n: dict(t.settings) for n, t in project.targets.items()},
        model_sources={n: m.source for n, m in project.models.items()},
        model_info={n: dict(m.info) for n, m in project.models.items()},
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        bundles_dir=project.bundles_dir or project.root / "bundles",
    )
    data["not_built"] = missing
    out = Path(args.out) if args.out else project.root / "build" / "report.html"
    atomic_write_bytes(out, render_html(data).encode())
    if getattr(args, "json", False):
        print(json.dumps({"ok": True, "html": str(out), **data}, indent=1, default=str))
    elif not args.quiet:
        note = f" (not built yet: {', '.join(missing)})" if missing else ""
        print(f"report: {out}{note}")
    return 0


@click.command("report")
@click.option("--out", metavar="FILE", help="where to write it (default: build/report.html)")
@opt.project
@opt.json_summary
@opt.verbose
@opt.quiet
def command(**params) -> int:
    return opt.call(run, params)

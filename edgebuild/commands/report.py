"""`edgebuild report [--out FILE]`: an HTML page of every target's last build."""
from __future__ import annotations

from pathlib import Path

from edgebuild.errors import ConfigError
from edgebuild.fsutil import atomic_write_bytes
from edgebuild.project import load_project
from edgebuild.report import render
from edgebuild.state import load_results


def run(args) -> int:
    project = load_project(args.project)
    results = {name: data for name, data in load_results(project.root).items() if name in project.targets}
    if not results:
        raise ConfigError("no build results yet: run `edgebuild build` or `edgebuild all` first")
    missing = sorted(set(project.targets) - set(results))
    out = Path(args.out) if args.out else project.root / "build" / "report.html"
    atomic_write_bytes(out, render(project.name, project.version, results).encode())
    if not args.quiet:
        note = f" (not built yet: {', '.join(missing)})" if missing else ""
        print(f"report: {out}{note}")
    return 0

"""Progress on stderr: a live rich display on a terminal, plain lines otherwise (CI logs)."""

from __future__ import annotations

import sys
import threading
import time


class Reporter:
    def start(self, total: int) -> None: ...
    def node_started(self, node) -> None: ...
    def node_done(self, node, outcome) -> None: ...
    def stop(self) -> None: ...


class PlainReporter(Reporter):
    """One line per step that runs, fails or is deferred; cached steps are counted, not listed."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose

    def node_started(self, node) -> None:
        print(f"[run]      {node.label} ({node.step})", file=sys.stderr, flush=True)

    def node_done(self, node, outcome) -> None:
        if outcome.status == "cached" and not self.verbose:
            return
        note = f": {outcome.message}" if outcome.message and outcome.status != "run" else ""
        timing = f" {outcome.seconds:.1f}s" if outcome.status == "run" else ""
        print(
            f"[{outcome.status}]{' ' * (9 - len(outcome.status))}{node.label}{timing}{note}",
            file=sys.stderr,
            flush=True,
        )


class RichReporter(Reporter):
    """A live table of running steps with counts of done, cached and failed ones."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.running: dict[str, float] = {}
        self.counts = {"run": 0, "cached": 0, "failed": 0, "deferred": 0, "blocked": 0}
        self.total = 0
        self._lock = threading.Lock()
        self._live = None

    def _render(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for label, since in sorted(self.running.items()):
            table.add_row("[yellow]running[/]", label, f"{now - since:.1f}s")
        c = self.counts
        done = sum(c.values())
        table.add_row(
            "",
            f"[bold]{done}/{self.total}[/] steps: {c['run']} run, {c['cached']} cached, "
            f"{c['failed']} failed, {c['deferred']} deferred",
            "",
        )
        return table

    def start(self, total: int) -> None:
        from rich.live import Live

        self.total = total
        self._live = Live(
            self._render(),
            console=self.console,
            refresh_per_second=8,
            transient=True,
            get_renderable=self._render,
        )
        self._live.start()

    def node_started(self, node) -> None:
        with self._lock:
            self.running[node.label] = time.monotonic()

    def node_done(self, node, outcome) -> None:
        with self._lock:
            self.running.pop(node.label, None)
            self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if outcome.status in ("run", "failed", "deferred"):
            colour = {"run": "green", "failed": "red", "deferred": "yellow"}[outcome.status]
            note = f": {outcome.message}" if outcome.message and outcome.status != "run" else ""
            self.console.print(f"[{colour}]{outcome.status:>8}[/] {node.label} {outcome.seconds:.1f}s{note}")

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()


def make_reporter(quiet: bool, verbose: bool) -> Reporter:
    if quiet:
        return Reporter()
    if sys.stderr.isatty():
        return RichReporter()
    return PlainReporter(verbose)

"""decision.py: the one decide() that the scheduler (a build, `check`) and `build -n` share, so a
dry run names exactly the steps the build then runs, with the scheduler's own reasons."""

from __future__ import annotations

from conftest import ort_demo_toml, run_cli, write_demo

from edgebuild.cli import parse_args
from edgebuild.decision import BLOCKED, CACHED, NEEDS_DATA, UPSTREAM_FAILED
from edgebuild.executors.local import LocalExecutor
from edgebuild.explain import dry_run
from edgebuild.progress import make_reporter
from edgebuild.scheduler import Scheduler
from edgebuild.session import build_session

NO_CALIBRATION = ('calibration = "data/digits_calibration.npz"\n', "")


def _scheduler(session) -> Scheduler:
    return Scheduler(
        session.project.root,
        session.graph,
        session.cache,
        session.stats,
        LocalExecutor(2),
        make_reporter(True, False),
    )


def _session(project):
    return build_session(parse_args(["build", "-C", str(project), "--remote-cache", ""]), None)


def test_dry_run_reasons_before_any_build(tmp_path):
    project = write_demo(tmp_path / "demo", ort_demo_toml().replace(*NO_CALIBRATION))
    dry = run_cli(project, "build", "-n", "--json")
    assert dry.rc == 0, dry.stderr
    rows = {row["label"]: row for row in dry.json["steps"]}
    assert all(row["would_run"] for row in rows.values())
    assert rows["cpu-fp32/check"]["reasons"] == ["no cache entry: never built"]
    assert rows["cpu-fp32/coverage"]["reasons"] == ["runs after cpu-fp32/check (input not built yet)"]
    # the missing data is named before the unbuilt inputs, and its consumer waits on it
    assert rows["cpu-int8/int8"]["reasons"][0].startswith(
        "cannot run: needs calibration data: add calibration"
    )
    assert "cpu-int8/int8" in rows["cpu-int8/verify-int8"]["reasons"][0]
    assert not list((project / ".edgebuild" / "cache").rglob("ac/*/*"))  # a dry run builds nothing


def test_build_runs_what_the_dry_run_said(demo_copy):
    toml = demo_copy / "targets.toml"
    text = toml.read_text().replace(*NO_CALIBRATION)
    fp16 = text.index("[targets.cpu-fp16]")
    toml.write_text(text[:fp16] + text[fp16:].replace("latency_runs = 20", "latency_runs = 21", 1))
    with _session(demo_copy) as session:
        planner = _scheduler(session)
        would_run = {row["label"] for row in dry_run(planner) if row["would_run"]}
        assert planner.outcomes == {}  # the dry run keeps its planned outcomes to itself
    assert would_run == {"cpu-fp16/verify-fp16", "cpu-int8/int8", "cpu-int8/verify-int8"}
    with _session(demo_copy) as session:
        sched = _scheduler(session)
        outcomes = sched.run().outcomes
        nodes = session.graph.nodes
        settled = {
            nodes[nid].label: o.status
            for nid, o in outcomes.items()
            if o.status not in ("cached", "deferred")
        }
        assert settled == {
            "cpu-fp16/verify-fp16": "run",
            "cpu-int8/int8": "failed",
            "cpu-int8/verify-int8": "blocked",
        }
        by_label = {n.label: n for n in nodes.values()}
        missing = sched.decide(by_label["cpu-int8/int8"])  # asked again with the settled outcomes
        assert (missing.action, missing.cause, missing.status) == (BLOCKED, NEEDS_DATA, "failed")
        blocked = sched.decide(by_label["cpu-int8/verify-int8"])
        assert (blocked.action, blocked.cause) == (BLOCKED, UPSTREAM_FAILED)
        assert blocked.reason == f"not run: cpu-int8/int8 failed: {missing.reason}"
        assert blocked.reason == outcomes[by_label["cpu-int8/verify-int8"].id].message
        again = sched.decide(by_label["cpu-fp16/verify-fp16"])  # what this build just stored
        assert again.action == CACHED and again.key == outcomes[by_label["cpu-fp16/verify-fp16"].id].key

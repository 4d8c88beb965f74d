"""The build engine (project -> targets -> graph -> decide() -> scheduler -> executor -> cache) with a
trivial step kind, so these tests take seconds: no converter, no runtime, no real model.

The step kind `enginetest.echo` comes from a test package registered the way a third party's is
(an `edgebuild.steps` entry point in a .dist-info folder on the path), and its recipe is the
project's own recipes/ file. The builds run in this process (build_session + Scheduler, as the
`build` command does), each step in a real worker process (LocalExecutor, the default executor).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from plugin_package import write_plugin_package

from edgebuild import steps
from edgebuild.collect import collect_targets
from edgebuild.decision import BLOCKED, CACHED, UPSTREAM_DEFERRED, UPSTREAM_FAILED
from edgebuild.executors.local import LocalExecutor
from edgebuild.explain import dry_run
from edgebuild.progress import Reporter
from edgebuild.scheduler import Scheduler
from edgebuild.session import build_session

# outcome "fail": StepFailed; "defer": Deferred before writing anything; "defer-after": Deferred
# after writing its output (a part done here that consumers may use)
ECHO_MODULE = """
from edgebuild.steps.base import Deferred, Step, StepFailed


class EngineEchoStep(Step):
    name = "enginetest.echo"
    version = "1"
    inputs = ("model",)
    outputs = ("out.txt",)

    def run(self, ctx):
        outcome = ctx.params.get("outcome", "ok")
        if outcome == "fail":
            raise StepFailed("told to fail")
        if outcome == "defer":
            raise Deferred("needs a device this host lacks")
        ctx.output("out.txt").write_text(ctx.input("model").read_text() + "|" + str(ctx.params.get("tag")))
        if outcome == "defer-after":
            raise Deferred("the rest needs a device this host lacks")
        return {"params": ctx.params, "upstream": sorted(ctx.upstream), "metrics": {ctx.params["tag"]: 1}}
"""

# a project recipe that replaces the built-in recipe of the same name (project > built-in)
RECIPE = """
[recipe]
name = "onnxruntime"
description = "three echo steps; the first is the same for every target"
runtime = "onnxruntime"
default_device = "small"

[parameters]
tag = "recipe-default"
outcome = "ok"
level = 1

[devices.small]
description = "the recipe's default device"

[devices.big]
description = "a device a target names"

[[steps]]
id = "prep"
step = "enginetest.echo"
inputs = { model = "model.source" }
params = { tag = "prep" }

[[steps]]
id = "make"
step = "enginetest.echo"
inputs = { model = "prep.out.txt" }
params = { tag = "{tag}", outcome = "{outcome}", device = "{device}", level = "{level}", target = "{target}" }
artifact = "made-{target}.txt"

[[steps]]
id = "finish"
step = "enginetest.echo"
inputs = { model = "make.out.txt" }
params = { tag = "finish-{tag}" }
"""

TARGETS = """
[project]
name = "engine"
version = "1.0.0"

[models.m]
source = "models/m.onnx"

[models.other]
source = "models/other.onnx"

[targets.plain]
model = "m"
recipe = "onnxruntime"

[targets.tagged]
model = "m"
recipe = "onnxruntime"
device = "big"
tag = "project-tag"
level = 3

[targets.failing]
model = "m"
recipe = "onnxruntime"
outcome = "fail"

[targets.deferring]
model = "m"
recipe = "onnxruntime"
outcome = "defer"

[targets.partial]
model = "m"
recipe = "onnxruntime"
outcome = "defer-after"
tag = "partial"

[targets.elsewhere]
model = "other"
recipe = "onnxruntime"
"""


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """The plugin visible here and to worker processes; nothing leaks in from the caller's shell
    (cache folder, remote cache)."""
    base = tmp_path_factory.mktemp("enginetest-plugin")
    write_plugin_package(
        base,
        "edgebuild_enginetest",
        ECHO_MODULE,
        {"edgebuild.steps": {"enginetest.echo": "edgebuild_enginetest:EngineEchoStep"}},
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(base))
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(base), os.environ.get("PYTHONPATH")])))
        for name in ("EDGEBUILD_CACHE_DIR", "EDGEBUILD_REMOTE_CACHE"):
            mp.delenv(name, raising=False)
        steps._entry_points.cache_clear()
        steps.get_step.cache_clear()
        yield
    steps._entry_points.cache_clear()  # the plugin's path is gone again
    steps.get_step.cache_clear()


@pytest.fixture(scope="module")
def first(plugin_env, tmp_path_factory) -> SimpleNamespace:
    """The project after its first build (read-only for the tests that take it)."""
    root = tmp_path_factory.mktemp("engine") / "engine"
    (root / "models").mkdir(parents=True)
    (root / "recipes").mkdir()
    (root / "models" / "m.onnx").write_text("m-bytes")
    (root / "models" / "other.onnx").write_text("other-bytes")
    (root / "recipes" / "onnxruntime.toml").write_text(RECIPE)
    (root / "targets.toml").write_text(TARGETS)
    done = build(root)
    done.root = root
    return done


@pytest.fixture
def project(first, tmp_path) -> Path:
    """A private copy of the built project (cache and state included) that a test may change."""
    dest = tmp_path / "engine"
    shutil.copytree(first.root, dest, symlinks=True)
    return dest


def _session(root: Path):
    return build_session(SimpleNamespace(project=root, remote_cache="", trust_project_toolchains=False), None)


def build(root: Path) -> SimpleNamespace:
    """One build as `edgebuild build` runs it: {(target, step id): outcome}, {target: result}, the graph."""
    with _session(root) as session:
        sched = Scheduler(root, session.graph, session.cache, session.stats, LocalExecutor(2), Reporter())
        done = collect_targets(sched.run())  # the BuildResult, summed up per target
        outcomes, results = done.outcomes, done.targets
        nodes = session.graph.nodes
        by_target = {(t, step_id): outcomes[nid] for nid, n in nodes.items() for t, step_id in n.uses.items()}
        return SimpleNamespace(outcomes=by_target, results=results, graph=session.graph, sched=sched)


def plan(root: Path) -> dict[str, dict]:
    """`build -n`: {label: row}."""
    with _session(root) as session:
        sched = Scheduler(root, session.graph, session.cache, session.stats, LocalExecutor(1), Reporter())
        return {row["label"]: row for row in dry_run(sched)}


def statuses(done, target: str) -> dict[str, str]:
    return {step_id: o.status for (t, step_id), o in done.outcomes.items() if t == target}


def test_targets_share_the_node_whose_step_and_inputs_are_the_same(first):
    done = first
    prep = [n for n in done.graph.nodes.values() if n.params == {"tag": "prep"}]
    # one prep node per source model: five targets on model m share one, `elsewhere` has its own
    assert sorted(len(n.uses) for n in prep) == [1, 5]
    shared = next(n for n in prep if len(n.uses) == 5)
    assert sorted(shared.uses) == ["deferring", "failing", "partial", "plain", "tagged"]
    assert len({id(done.outcomes[(t, "prep")]) for t in shared.uses}) == 1  # run once for all of them
    assert done.outcomes[("plain", "prep")].status == "run"
    # six targets x three steps, less the four prep nodes they share
    assert len(done.graph.nodes) == 6 * 3 - 4
    assert (done.root / "build" / "plain" / "made-plain.txt").read_text() == "m-bytes|prep|recipe-default"


def test_failure_and_deferral_reach_only_their_dependents(first):
    done = first
    assert statuses(done, "failing") == {"prep": "run", "make": "failed", "finish": "blocked"}
    finish = done.outcomes[("failing", "finish")]
    assert finish.message == "not run: failing/make failed: told to fail"
    assert done.results["failing"].status == "failed"
    assert done.results["failing"].failed_step == "make"

    # deferred with nothing written: the consumer cannot run and is deferred with the same reason
    assert statuses(done, "deferring") == {"prep": "run", "make": "deferred", "finish": "deferred"}
    assert done.outcomes[("deferring", "finish")].message == "needs a device this host lacks"
    assert done.results["deferring"].status == "deferred"
    assert done.results["deferring"].reason == "step 'make' deferred: needs a device this host lacks"

    # deferred after writing its output: the consumer runs on that part
    assert statuses(done, "partial") == {"prep": "run", "make": "deferred", "finish": "run"}
    assert done.results["partial"].status == "deferred"

    # the other targets are untouched by those
    for target in ("plain", "tagged", "elsewhere"):
        assert done.results[target].status == "built", done.results[target]
        assert set(statuses(done, target).values()) == {"run"}


def test_decisions_explain_blocked_nodes(first):
    done = first
    nodes = {n.label: n for n in done.graph.nodes.values()}
    failed = done.sched.decide(nodes["failing/finish"])
    assert (failed.action, failed.cause, failed.status) == (BLOCKED, UPSTREAM_FAILED, "blocked")
    deferred = done.sched.decide(nodes["deferring/finish"])
    assert (deferred.action, deferred.cause, deferred.status) == (BLOCKED, UPSTREAM_DEFERRED, "deferred")
    cached = done.sched.decide(nodes["plain/make"])
    assert cached.action == CACHED and cached.key == done.outcomes[("plain", "make")].key


def test_target_settings_override_recipe_parameters_and_device(first):
    done = first
    plain = done.outcomes[("plain", "make")].entry["metadata"]["params"]
    tagged = done.outcomes[("tagged", "make")].entry["metadata"]["params"]
    # the recipe's defaults where the project sets nothing; the project's value where it does
    assert plain == {
        "tag": "recipe-default",
        "outcome": "ok",
        "device": "small",
        "level": 1,
        "target": "plain",
    }
    assert tagged == {"tag": "project-tag", "outcome": "ok", "device": "big", "level": 3, "target": "tagged"}
    assert done.results["tagged"].device == "big" and done.results["plain"].device == "small"
    # a target's metadata: tables merge key by key, a downstream step's value winning
    merged = done.results["tagged"].metadata
    assert merged["params"] == {
        "tag": "finish-project-tag",
        "outcome": "ok",
        "device": "big",
        "level": 3,
        "target": "tagged",
    }
    assert merged["upstream"] == ["model"]
    assert merged["metrics"] == {"prep": 1, "project-tag": 1, "finish-project-tag": 1}
    # the project's recipes/onnxruntime.toml replaced the built-in recipe of that name
    assert {n.step for n in done.graph.nodes.values()} == {"enginetest.echo"}


def test_second_build_is_all_cache_hits_and_failures_are_retried(project):
    again = build(project)
    ran = {key: o.status for key, o in again.outcomes.items() if o.status not in ("cached", "blocked")}
    # a failure is not cached (it runs again); a deferral is, with its message
    assert ran == {
        ("failing", "make"): "failed",
        ("deferring", "make"): "deferred",
        ("deferring", "finish"): "deferred",
        ("partial", "make"): "deferred",
    }
    assert again.outcomes[("deferring", "make")].message == "needs a device this host lacks"
    assert again.outcomes[("deferring", "make")].log is None  # from the cache: no worker ran
    assert again.results["plain"].status == "cached"


def test_a_change_rebuilds_only_its_branch_and_build_n_says_why(project):
    rows = plan(project)
    # only the failed step would run again (and the step behind it); a deferral stays settled
    assert {label for label, row in rows.items() if row["would_run"]} == {"failing/make", "failing/finish"}
    assert rows["failing/make"]["reasons"] == ["failed last time (failures are not cached): told to fail"]
    assert rows["failing/finish"]["reasons"] == ["runs after failing/make (input not built yet)"]
    assert rows["deferring/finish"] == {
        "label": "deferring/finish",
        "step": "enginetest.echo",
        "targets": ["deferring"],
        "would_run": False,
        "reasons": ["needs a device this host lacks"],
    }

    toml = project / "targets.toml"
    toml.write_text(toml.read_text().replace('tag = "project-tag"', 'tag = "changed"'))
    (project / "models" / "other.onnx").write_text("other-bytes, edited")
    rows = plan(project)
    would_run = {label for label, row in rows.items() if row["would_run"]}
    assert would_run == {
        "tagged/make",
        "tagged/finish",
        "elsewhere/prep",
        "elsewhere/make",
        "elsewhere/finish",
        "failing/make",
        "failing/finish",
    }
    assert rows["tagged/make"]["reasons"] == ["parameter tag: 'project-tag' -> 'changed'"]
    assert rows["tagged/finish"]["reasons"] == ["runs after tagged/make (input not built yet)"]
    assert rows["elsewhere/prep"]["reasons"] == ["input 'model' changed (models/other.onnx)"]
    assert rows["elsewhere/make"]["reasons"] == ["runs after elsewhere/prep (input not built yet)"]

    done = build(project)
    ran = {key for key, o in done.outcomes.items() if o.status == "run"}
    assert ran == {
        ("tagged", "make"),
        ("tagged", "finish"),
        ("elsewhere", "prep"),
        ("elsewhere", "make"),
        ("elsewhere", "finish"),
    }
    assert done.outcomes[("plain", "prep")].status == "cached"
    assert (project / "build" / "tagged" / "made-tagged.txt").read_text() == "m-bytes|prep|changed"

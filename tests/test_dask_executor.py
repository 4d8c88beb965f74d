"""The Dask executor against a real cluster on loopback: a `dask scheduler` process, several
`edgebuild agent` processes advertising different resources, and a real nginx as the shared cache
that moves every file. Device-bound steps run only on the agent advertising the device, a build
through Dask gives the same action keys and byte-identical bundles as a local build, and killing an
agent in the middle of a step still ends in a complete build."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ort_demo_toml, run_cli, write_demo
from plugin_package import env_with_plugins, write_plugin_package

distributed = pytest.importorskip(
    "distributed", reason="the dask executor tests need 'distributed' (pip install 'dask[distributed]')"
)
from nginx_server import free_port, start_nginx  # noqa: E402  (skips the test without nginx)

# `dask scheduler`, run from this interpreter so no PATH lookup can pick another installation
DASK_SCHEDULER = [sys.executable, "-m", "distributed.cli.dask_scheduler"]

# Test-only step kinds, registered the way third parties add steps: an entry point in the group
# `edgebuild.steps`, from a .dist-info folder on PYTHONPATH (seen by the build host and the agents).
PLUGIN = """
import os, time
from edgebuild.steps.base import Step

class Work(Step):
    name = "testplug.work"
    version = "1"
    inputs = ("model",)
    outputs = ("result.txt",)

    def resources(self, params):
        return {"gpu-sm87": 1} if params.get("gpu") else {}

    def run(self, ctx):
        marker = os.path.join(os.environ["EDGEBUILD_TEST_MARKERS"],
                              f"{os.environ.get('EDGEBUILD_AGENT', 'local')}.{ctx.params['tag']}.{os.getpid()}")
        open(marker, "w").close()
        time.sleep(float(ctx.params["seconds"]))
        size = ctx.input("model").stat().st_size
        ctx.output("result.txt").write_text(f"{ctx.params['tag']} {size}")
        return {"metrics": {"model_bytes": size}}

class Pinned(Work):
    name = "testplug.pinned"
    uses = ("edgebuild-fakelib",)    # its installed version is part of the action key
"""

RECIPE = """
[recipe]
name = "testplug"
description = "test steps that record which agent ran them"
runtime = "onnxruntime"
default_device = "cpu"

[parameters]
seconds = 0.0
gpu = false

[devices.cpu]
description = "any host"

[[steps]]
id = "work"
step = "testplug.work"
inputs = { model = "model.source" }
params = { seconds = "{seconds}", gpu = "{gpu}", tag = "{target}" }
artifact = "{target}.txt"
"""


def plugin_project(dest: Path, targets: dict[str, dict]) -> Path:
    text = '[project]\nname = "plug"\nversion = "1.0.0"\n\n[models.digits]\nsource = "models/digits.onnx"\n'
    for name, settings in targets.items():
        text += f'\n[targets.{name}]\nmodel = "digits"\nrecipe = "testplug"\n'
        text += "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    project = write_demo(dest, text)
    (project / "recipes").mkdir()
    (project / "recipes" / "testplug.toml").write_text(RECIPE)
    return project


class Cluster:
    """A dask scheduler and edgebuild agents as separate processes on 127.0.0.1."""

    def __init__(self, base: Path, env: dict) -> None:
        self.base, self.env = base, env
        self.port = free_port()
        self.agents: dict[str, subprocess.Popen] = {}
        base.mkdir(parents=True, exist_ok=True)
        self.scheduler = subprocess.Popen(
            [*DASK_SCHEDULER, "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=open(base / "scheduler.log", "wb"),
            env=env,
        )

    @property
    def executor(self) -> str:
        return f"dask://127.0.0.1:{self.port}"

    def add_agent(self, name: str, resources: str = "", slots: int = 1) -> dict:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgebuild",
                "agent",
                "--scheduler",
                f"127.0.0.1:{self.port}",
                "--name",
                name,
                "--resources",
                resources,
                "-j",
                str(slots),
            ],
            stdout=subprocess.PIPE,
            stderr=open(self.base / f"agent-{name}.log", "wb"),
            env=self.env,
            text=True,
        )
        self.agents[name] = proc
        line = proc.stdout.readline()  # the agent prints what it advertises once registered
        assert line, f"agent {name} did not start: {(self.base / f'agent-{name}.log').read_text()[-2000:]}"
        return json.loads(line)

    def kill_agent(self, name: str) -> None:
        self.agents[name].send_signal(signal.SIGKILL)
        self.agents[name].wait(timeout=20)

    def stop(self) -> None:
        for proc in [*self.agents.values(), self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    server = start_nginx(tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict:
    """Environment for the build host and the agents: the test plugin on PYTHONPATH, a markers folder."""
    base = tmp_path_factory.mktemp("plugin")
    write_plugin_package(
        base,
        "edgebuild_testplug",
        PLUGIN,
        {
            "edgebuild.steps": {
                "testplug.work": "edgebuild_testplug:Work",
                "testplug.pinned": "edgebuild_testplug:Pinned",
            }
        },
    )
    _fake_distribution(base, "1.0")
    markers = base / "markers"
    markers.mkdir()
    env = env_with_plugins(base)
    env["EDGEBUILD_TEST_MARKERS"] = str(markers)
    return env


def _fake_distribution(folder: Path, version: str) -> None:
    info = folder / f"edgebuild_fakelib-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: edgebuild-fakelib\nVersion: {version}\n")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, plugin_env):
    """One agent with a Jetson Orin class GPU (gpu-sm87) and two CPU-only agents."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), plugin_env)
    try:
        advertised = cluster.add_agent("gpu-agent", "gpu-sm87=1")
        assert advertised["resources"] == {"gpu-sm87": 1.0}
        assert cluster.add_agent("cpu-a")["resources"] == {}
        cluster.add_agent("cpu-b")
        yield cluster
    finally:
        cluster.stop()


def _markers(env: dict) -> list[tuple[str, str]]:
    """(agent, tag) for every step run recorded by the test plugin."""
    return [tuple(p.name.split(".")[:2]) for p in Path(env["EDGEBUILD_TEST_MARKERS"]).iterdir()]


def _ran_on(project: Path, target: str, step_id: str) -> str:
    first = (project / ".edgebuild" / "logs" / target / f"{step_id}.log").read_text().splitlines()[0]
    return first.rsplit(" ", 1)[1]


def test_device_bound_steps_run_only_on_the_agent_advertising_the_device(
    cluster, nginx, plugin_env, tmp_path
):
    targets = {f"gpu{i}": {"gpu": True} for i in range(5)} | {f"cpu{i}": {"seconds": 0.3} for i in range(5)}
    project = plugin_project(tmp_path / "plug", targets)
    env = dict(plugin_env, EDGEBUILD_REMOTE_CACHE=nginx.url)
    result = run_cli(project, "build", "--json", "--executor", cluster.executor, "-j", "2", env=env)
    assert result.rc == 0, result.stderr
    assert result.json["steps"]["run"] == 10
    ran = {tag: agent for agent, tag in _markers(plugin_env) if tag in targets}
    assert {tag: ran[tag] for tag in targets if tag.startswith("gpu")} == {
        f"gpu{i}": "gpu-agent" for i in range(5)
    }
    assert {_ran_on(project, f"gpu{i}", "work") for i in range(5)} == {"gpu-agent"}
    # steps without requirements are spread over the agents, CPU-only ones included
    assert {ran[f"cpu{i}"] for i in range(5)} & {"cpu-a", "cpu-b"}
    # the outputs came back through the shared cache into this host's build folder
    assert (
        project / "build" / "gpu3" / "gpu3.txt"
    ).read_text() == f"gpu3 {(project / 'models' / 'digits.onnx').stat().st_size}"


def test_dask_build_gives_the_local_build_keys_and_identical_bundles(cluster, nginx, plugin_env, tmp_path):
    toml = ort_demo_toml(
        '\n[targets.orin]\nmodel = "digits"\nrecipe = "tensorrt"\ndevice = "jetson-orin-nano"\n'
        'precision = "int8"\n'
    )
    keys = tmp_path / "keys"
    subprocess.run([sys.executable, "-m", "edgebuild", "keygen", "--out", str(keys)], check=True)
    env = dict(plugin_env, EDGEBUILD_SIGNING_KEY=str(keys / "edgebuild.key"))
    local = write_demo(tmp_path / "local" / "demo", toml)
    remote = write_demo(tmp_path / "remote" / "demo", toml)
    assert run_cli(local, "all", "--json", "-j", "2", env=env).rc == 0
    built = run_cli(
        remote,
        "all",
        "--json",
        "--executor",
        cluster.executor,
        env=dict(env, EDGEBUILD_REMOTE_CACHE=nginx.url),
    )
    assert built.rc == 0, built.stderr
    assert (
        built.json["targets"]["orin"]["status"] == "deferred"
    )  # no TensorRT here: the engine waits for the device
    assert _ran_on(remote, "orin", "build") == "gpu-agent"  # tensorrt.build needs gpu-sm87
    agents = {
        _ran_on(remote, log.parent.name, log.stem) for log in (remote / ".edgebuild" / "logs").glob("*/*.log")
    }
    assert len(agents) >= 2

    def hashes(project):
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((project / "bundles").iterdir())
        }

    def keys_of(project):
        states = sorted((project / ".edgebuild" / "state" / "targets").glob("*.json"))
        return {s.stem: {k: v["key"] for k, v in json.loads(s.read_text())["steps"].items()} for s in states}

    assert keys_of(remote) == keys_of(local) and len(keys_of(local)) == 4
    assert hashes(remote) == hashes(local)
    assert {"demo-cpu-int8-1.0.0.tar.gz", "demo-orin-1.0.0.tar.gz"} <= set(hashes(local))
    # a second dask build of the same project runs nothing
    again = run_cli(
        remote,
        "build",
        "--json",
        "--executor",
        cluster.executor,
        env=dict(env, EDGEBUILD_REMOTE_CACHE=nginx.url),
    )
    assert again.rc == 0 and again.json["steps"]["run"] == 0


def test_killing_an_agent_mid_build_still_completes(nginx, plugin_env, tmp_path):
    cluster = Cluster(tmp_path / "cluster", plugin_env)
    try:
        cluster.add_agent("doomed")
        cluster.add_agent("survivor")
        targets = {f"slow{i}": {"seconds": 3.0} for i in range(4)}
        project = plugin_project(tmp_path / "plug", targets)
        env = dict(plugin_env, EDGEBUILD_REMOTE_CACHE=nginx.url)
        build = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgebuild",
                "build",
                "--json",
                "--executor",
                cluster.executor,
                "-C",
                str(project),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not (
            started := [tag for agent, tag in _markers(plugin_env) if agent == "doomed" and tag in targets]
        ):
            assert time.monotonic() < deadline and build.poll() is None, (
                "the doomed agent never started a step"
            )
            time.sleep(0.05)
        cluster.kill_agent("doomed")  # mid-step: its step process dies with it
        stdout, stderr = build.communicate(timeout=180)
        assert build.returncode == 0, stderr
        summary = json.loads(stdout)
        assert summary["steps"]["run"] == 4 and summary["steps"]["failed"] == 0
        assert {t: summary["targets"][t]["status"] for t in targets} == {t: "built" for t in targets}
        # the step the dead agent had started was run again to the end on the survivor
        assert ("survivor", started[0]) in _markers(plugin_env)
        assert _ran_on(project, started[0], "work") == "survivor"
        for tag in targets:
            assert (project / "build" / tag / f"{tag}.txt").read_text().startswith(f"{tag} ")
    finally:
        cluster.stop()


def test_dask_executor_without_a_remote_cache_is_a_configuration_error(plugin_env, tmp_path):
    project = plugin_project(tmp_path / "plug", {"one": {}})
    result = run_cli(project, "build", "--executor", "dask://127.0.0.1:9", env=plugin_env)
    assert result.rc == 2
    assert result.stderr.strip().count("\n") == 0 and "--remote-cache" in result.stderr
    bad = run_cli(project, "build", "--executor", "dask://nowhere", env=plugin_env)
    assert bad.rc == 2 and "HOST:PORT" in bad.stderr
    down = run_cli(
        project,
        "build",
        "-q",
        "--executor",
        f"dask://127.0.0.1:{free_port()}",
        env=dict(plugin_env, EDGEBUILD_REMOTE_CACHE="http://127.0.0.1:9"),
    )
    assert down.rc == 2
    assert down.stderr.startswith("edgebuild: error: cannot reach the dask scheduler at tcp://127.0.0.1:")
    assert down.stderr.strip().count("\n") == 0


def test_agent_rejects_malformed_resources(plugin_env):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebuild",
            "agent",
            "--scheduler",
            "127.0.0.1:9",
            "--resources",
            "gpu-sm87=lots",
        ],
        capture_output=True,
        text=True,
        env=plugin_env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "edgebuild: error: --resources: 'gpu-sm87=lots' must look like NAME=N with N > 0 "
        "(e.g. gpu-sm87=1)"
    )


def test_agent_with_other_library_versions_refuses_the_step(nginx, plugin_env, tmp_path):
    """A result made with other versions than the action key names would poison the shared cache."""
    newer = tmp_path / "newer"
    _fake_distribution(newer, "2.0")
    agent_env = dict(plugin_env, PYTHONPATH=os.pathsep.join([str(newer), plugin_env["PYTHONPATH"]]))
    cluster = Cluster(tmp_path / "cluster", agent_env)
    try:
        cluster.add_agent("upgraded")
        project = plugin_project(tmp_path / "plug", {"one": {}})
        recipe = project / "recipes" / "testplug.toml"
        recipe.write_text(recipe.read_text().replace('step = "testplug.work"', 'step = "testplug.pinned"'))
        result = run_cli(
            project,
            "build",
            "--json",
            "--executor",
            cluster.executor,
            env=dict(plugin_env, EDGEBUILD_REMOTE_CACHE=nginx.url),
        )
        assert result.rc == 1
        reason = result.json["targets"]["one"]["reason"]
        assert "agent upgraded: versions in the action key of testplug.pinned differ" in reason
        assert "edgebuild-fakelib 2.0 here, 1.0 on the build host" in reason
        assert not (project / "build" / "one").exists()
    finally:
        cluster.stop()

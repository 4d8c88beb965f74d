"""Scaling of the Dask executor: a generated graph of N small steps (targets x chains of steps, each
step reading its predecessor's output) built from a cold cache on 1, 2 and 4 local agents, next
to the local executor with -j 1. Prints wall times, speedups and the overhead each step pays for
going through Dask and the shared cache (dask with 1 agent minus local -j 1, per step).

    python benchmarks/dask_scaling.py [--steps 1000] [--chain 10] [--agents 1,2,4]

Needs `distributed` and nginx (apt-get install -y nginx-light). Every agent runs one step at a time;
on a host with fewer cores than agents the speedup is bounded by the cores, not by Dask.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import free_port, start_nginx  # also puts tests/ on sys.path

from plugin_package import write_plugin_package  # noqa: E402

# a trivial step, registered through the `edgebuild.steps` entry-point group like a third-party plugin
PLUGIN = """
from edgebuild.steps.base import Step

class Append(Step):
    name = "benchplug.append"
    version = "1"
    inputs = ("model",)
    outputs = ("out.txt",)

    def run(self, ctx):
        ctx.output("out.txt").write_bytes(ctx.input("model").read_bytes()[:64] + ctx.params["tag"].encode())
        return {}
"""


def wait_listening(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def write_plugin(base: Path) -> None:
    write_plugin_package(
        base,
        "edgebuild_benchplug",
        PLUGIN,
        {"edgebuild.steps": {"benchplug.append": "edgebuild_benchplug:Append"}},
    )


def write_project(dest: Path, steps: int, chain: int) -> None:
    """steps/chain targets, each a chain of `chain` steps; distinct tags keep every node distinct."""
    recipe = (
        '[recipe]\nname = "chain"\ndescription = "benchmark"\nruntime = "onnxruntime"\n'
        'default_device = "cpu"\n\n[devices.cpu]\ndescription = "any"\n'
    )
    previous = "model.source"
    for i in range(chain):
        recipe += (
            f'\n[[steps]]\nid = "s{i}"\nstep = "benchplug.append"\ninputs = {{ model = "{previous}" }}\n'
            f'params = {{ tag = "{{target}}-{i}" }}\n'
        )
        previous = f"s{i}.out.txt"
    (dest / "recipes").mkdir(parents=True)
    (dest / "recipes" / "chain.toml").write_text(recipe)
    (dest / "models").mkdir()
    (dest / "models" / "seed.onnx").write_bytes(b"seed model bytes\n")
    text = '[project]\nname = "bench"\nversion = "1.0.0"\n\n[models.seed]\nsource = "models/seed.onnx"\n'
    for t in range(steps // chain):
        text += f'\n[targets.t{t:04d}]\nmodel = "seed"\nrecipe = "chain"\n'
    (dest / "targets.toml").write_text(text)


def build(project: Path, env: dict, *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edgebuild", "build", "--json", "-q", "-C", str(project), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"build failed: {proc.stderr[-2000:]}")
    return seconds, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=10)
    parser.add_argument("--agents", default="1,2,4")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="edgebuild-dask-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        write_plugin(base)
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(base), os.environ.get("PYTHONPATH")]))
        )
        nginx, env["EDGEBUILD_REMOTE_CACHE"] = start_nginx(base / "nginx")
        procs.append(nginx)

        print(
            f"graph: {args.steps} steps ({args.steps // args.chain} targets x chains of {args.chain}); "
            f"host: {os.cpu_count()} CPUs"
        )
        write_project(base / "local", args.steps, args.chain)
        local_s, doc = build(base / "local", env, "-j", "1")
        assert doc["steps"]["run"] == args.steps, doc["steps"]
        print(f"local executor -j 1: {local_s:7.1f} s  ({local_s / args.steps * 1000:.1f} ms/step)")

        times = {}
        for count in [int(n) for n in args.agents.split(",")]:
            sched_port = free_port()
            cluster = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_scheduler",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(sched_port),
                        "--no-dashboard",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            ]
            wait_listening(sched_port, cluster[0], "dask scheduler")
            for i in range(count):
                agent = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "edgebuild",
                        "agent",
                        "--scheduler",
                        f"127.0.0.1:{sched_port}",
                        "--name",
                        f"a{i}",
                        "-j",
                        "1",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    text=True,
                )
                cluster.append(agent)
                agent.stdout.readline()  # registered
            procs.extend(cluster)
            project = base / f"dask{count}"
            write_project(project, args.steps, args.chain)
            seconds, doc = build(
                project, env, "--executor", f"dask://127.0.0.1:{sched_port}", "-j", str(count)
            )
            assert doc["steps"]["run"] == args.steps, doc["steps"]
            times[count] = seconds
            for proc in reversed(cluster):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            print(
                f"dask, {count} agent(s):   {seconds:7.1f} s  ({seconds / args.steps * 1000:.1f} ms/step)  "
                f"speedup vs 1 agent: {times[min(times)] / seconds:.2f}x"
            )
        if 1 in times:
            overhead = (times[1] - local_s) / args.steps * 1000
            print(f"overhead per step of dask + shared cache (1 agent vs local -j 1): {overhead:.1f} ms")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT if proc is procs[0] else signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

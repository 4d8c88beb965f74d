"""`edgebuild agent --scheduler ADDRESS [--resources NAME=N,...] [--detect]`: a build agent.

A Dask worker in this process, advertising resources that device-bound steps require (e.g.
`gpu-sm87` for a TensorRT engine for a Jetson Orin). Steps run in `python -m edgebuild.worker`
child processes (edgebuild.executors.agent_side.run_on_agent), so a crashing converter never takes the
agent down. `-j N` sets how many steps it runs at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

import click

from edgebuild import cli_options as opt
from edgebuild.errors import ConfigError

CONNECT_SECONDS = 30  # give up (exit 1) when the scheduler cannot be reached for this long


def parse_resources(text: str) -> dict[str, float]:
    """'gpu-sm87=1,tensorrt-10.15=2' -> {'gpu-sm87': 1.0, 'tensorrt-10.15': 2.0}"""
    found: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, amount = item.partition("=")
        try:
            value = float(amount) if sep else 1.0
        except ValueError:
            value = -1.0
        if not name.strip() or value <= 0:
            raise ConfigError(f"--resources: '{item}' must look like NAME=N with N > 0 (e.g. gpu-sm87=1)")
        found[name.strip()] = value
    return found


def detect_resources(slots: int) -> dict[str, float]:
    """What this host offers device-bound steps: each runtime's own detection (edgebuild/runtimes/),
    e.g. TensorRT's `gpu-smXY` per GPU and `tensorrt-MAJOR.MINOR`."""
    from edgebuild.runtimes import runtimes

    found: dict[str, float] = {}
    for runtime in runtimes().values():
        for name, amount in runtime.detect_resources(slots).items():
            found.setdefault(name, amount)
    return found


def scheduler_address(text: str) -> str:
    rest = text.split("://", 1)[1] if "://" in text else text
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--scheduler must be HOST:PORT of a dask scheduler, got '{text}'")
    return f"tcp://{host}:{port}"


def run(args) -> int:
    address = scheduler_address(args.scheduler)
    slots = max(1, args.jobs)
    resources = parse_resources(args.resources)
    if args.detect:
        for name, amount in detect_resources(slots).items():
            resources.setdefault(name, amount)  # what the user said wins over detection
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError(
            "edgebuild agent needs the 'distributed' package: pip install 'edgebuild[distributed]'"
        ) from None
    from edgebuild.executors.agent_side import AGENT_ENV

    os.environ[AGENT_ENV] = name
    return asyncio.run(_serve(address, name, slots, resources))


async def _serve(address: str, name: str, slots: int, resources: dict[str, float]) -> int:
    from distributed import Worker

    worker = Worker(address, name=name, nthreads=slots, resources=resources, death_timeout=CONNECT_SECONDS)
    try:
        await worker
    except (OSError, TimeoutError) as exc:
        print(f"edgebuild: error: cannot reach the dask scheduler at {address}: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "agent": name,
                "address": worker.address,
                "scheduler": address,
                "slots": slots,
                "resources": resources,
            }
        ),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.close()))
    await worker.finished()
    return 0


@click.command("agent")
@click.option("--scheduler", required=True, metavar="ADDRESS", help="dask scheduler, HOST:PORT")
@click.option(
    "--resources",
    default="",
    metavar="NAME=N,...",
    help="resources to advertise, e.g. gpu-sm87=1 (steps that need them run here)",
)
@click.option(
    "--detect",
    is_flag=True,
    help="also advertise the GPUs (gpu-smXY) and TensorRT version found on this host",
)
@click.option("--name", metavar="NAME", help="agent name shown in step logs (default: host-pid)")
@opt.jobs
@opt.verbose
def command(**params) -> int:
    return opt.call(run, params)

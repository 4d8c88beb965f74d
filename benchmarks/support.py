"""What several benchmark scripts need: a copy of the demo project, a free loopback port, a real
nginx WebDAV server as a Bazel-style HTTP cache (facts/remote-cache.md), and one step started in
an edgebuild worker process of a given interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import nginx_server  # noqa: E402  (one nginx cache server for tests and benchmarks)
from nginx_server import free_port  # noqa: E402,F401  (re-exported for the benchmarks)


def copy_demo(dest: Path) -> Path:
    """The demo project (targets.toml, models, data) copied to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("targets.toml", "models", "data"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dest / item)
    return dest


def start_nginx(base: Path) -> tuple[subprocess.Popen, str]:
    """nginx serving an empty cache under `base` (the tests' server); returns the process and its URL."""
    if nginx_server.NGINX is None:
        sys.exit("nginx is not installed: apt-get install -y nginx-light")
    server = nginx_server.start_nginx(base)
    return server.proc, server.url


def start_step_worker(
    python: Path, step: str, inputs: dict, params: dict, out: Path, upstream: dict | None = None
) -> tuple[subprocess.Popen, Path]:
    """`python -m edgebuild.worker` running `step` into `out` (its output and stderr discarded);
    returns the process and the result.json it writes when it finishes."""
    from edgebuild import toolchain

    out.mkdir(parents=True)
    req, result = out.parent / f"{out.name}.req.json", out.parent / f"{out.name}.res.json"
    request = {"step": step, "inputs": {k: str(v) for k, v in inputs.items()}, "params": params}
    request.update(out=str(out), result=str(result), upstream=upstream or {})
    req.write_text(json.dumps(request))
    proc = subprocess.Popen(
        [str(python), "-m", "edgebuild.worker", str(req)],
        env=dict(os.environ, PYTHONPATH=toolchain.worker_pythonpath()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, result

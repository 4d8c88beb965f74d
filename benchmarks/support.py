"""What several benchmark scripts need: a copy of the demo project, a free loopback port, and a
real nginx WebDAV server as a Bazel-style HTTP cache (facts/remote-cache.md)."""

from __future__ import annotations

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

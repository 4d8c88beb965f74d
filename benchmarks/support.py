"""What several benchmark scripts need: a copy of the demo project, a free loopback port, and a
real nginx WebDAV server as a Bazel-style HTTP cache (facts/remote-cache.md)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NGINX_CONF = """user root; worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{}}
http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
       uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
  server {{ listen 127.0.0.1:{port};
    location / {{ root {d}/store; dav_methods PUT DELETE; create_full_put_path on; client_max_body_size 0; }} }} }}
"""


def copy_demo(dest: Path) -> Path:
    """The demo project (targets.toml, models, data) copied to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("targets.toml", "models", "data"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dest / item)
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_nginx(base: Path) -> tuple[subprocess.Popen, str]:
    """nginx serving an empty cache under `base`; returns the process and its URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("nginx is not installed: apt-get install -y nginx-light")
    (base / "store").mkdir(parents=True)
    port = free_port()
    (base / "nginx.conf").write_text(NGINX_CONF.format(d=base, port=port))
    proc = subprocess.Popen([nginx, "-c", str(base / "nginx.conf"), "-p", str(base)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("nginx did not start")

"""A real nginx on loopback as a Bazel-style HTTP cache (WebDAV PUT), for the tests that need a
shared remote cache (test_remote_cache.py, test_dask_executor.py) and the benchmarks that do
(through benchmarks/support.py). nginx comes from Debian's nginx-light (.ci/run installs it);
without it, start_nginx skips the calling test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
TOKEN = "s3cret"

# / is an open Bazel-style cache; /secure/ wants the X-Cache-Token header; /failing/ always answers
# 503 and logs each request, so a test can count the client's attempts.
NGINX_CONF = """
user root; worker_processes 1; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{}}
http {{ access_log off; client_body_temp_path {dir}/body; proxy_temp_path {dir}/p; fastcgi_temp_path {dir}/f;
       uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
  server {{ listen 127.0.0.1:{port};
    location / {{ root {store}; dav_methods PUT DELETE; create_full_put_path on; client_max_body_size 0; }}
    location /secure/ {{ root {store}; dav_methods PUT; create_full_put_path on; client_max_body_size 0;
      if ($http_x_cache_token != "{token}") {{ return 401; }} }}
    location /failing/ {{ access_log {dir}/failing.log; return 503; }}
  }} }}
"""


@dataclass
class Nginx:
    dir: Path
    store: Path
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            self.proc.wait(timeout=20)

    def blob(self, digest: str, prefix: str = "") -> Path:
        return self.store / prefix.strip("/") / "cas" / digest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_nginx(base: Path, store: Path | None = None) -> Nginx:
    """nginx on a free loopback port, serving `store` (default base/store); skips the test without nginx."""
    if NGINX is None:
        import pytest

        pytest.skip("nginx is not installed (apt-get install -y nginx-light); the remote cache tests need it")
    base.mkdir(parents=True, exist_ok=True)
    store = store or base / "store"
    store.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = base / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=base, store=store, port=port, token=TOKEN))
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            error_log = base / "error.log"
            raise RuntimeError(
                f"nginx exited: {proc.stderr.read().decode()} "
                f"{error_log.read_text() if error_log.exists() else ''}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Nginx(base, store, port, proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not start listening within 10 s")

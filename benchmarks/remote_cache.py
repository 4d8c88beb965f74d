"""The shared remote cache against a local nginx (WebDAV PUT, as in tests/test_remote_cache.py).

    python benchmarks/remote_cache.py [--size-mb 512] [--runs 3]

Prints: HttpCache upload and verified download throughput for one large blob (and `curl` for the
same transfers when it is installed, as a yardstick); the demo project built from scratch with
write-through, a clean checkout built from the remote (0 steps run), the same checkout built
locally for comparison; and a no-op build with and without a (dead) remote configured, which
should not differ: a local hit never touches the network.
Needs the nginx binary (apt-get install -y nginx-light).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import REPO, free_port, start_nginx

from edgebuild.remote_cache import HttpCache


def best(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cli(project: Path, *args: str) -> tuple[float, dict]:
    # writer and reader hold the cache key, so every entry may be taken (without it the
    # verification steps run on the reader: see README, Threat model)
    env = {
        **os.environ,
        "EDGEBUILD_CACHE_DIR": "",
        "EDGEBUILD_REMOTE_CACHE_KEY": os.environ.get("EDGEBUILD_REMOTE_CACHE_KEY")
        or "bench-writers-" + "0" * 40,
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edgebuild", *args, "--json", "-j", "2", "-C", str(project)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"edgebuild {' '.join(args)} failed:\n{proc.stderr}")
    return seconds, json.loads(proc.stdout)


def demo(dest: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import write_demo

    return write_demo(dest)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        proc, url = start_nginx(tmp / "nginx")
        try:
            blob = tmp / "blob.bin"
            with open(blob, "wb") as fh:
                for _ in range(args.size_mb // 16):
                    fh.write(os.urandom(16 << 20))
            size = blob.stat().st_size
            digest = hashlib.sha256(blob.read_bytes()).hexdigest()
            remote = HttpCache(url)
            mb = size / 2**20
            up = best(lambda: remote.put_blob(digest, blob), args.runs)
            down = best(lambda: remote.get_blob(digest, tmp / "down" / digest), args.runs)
            print(
                f"blob {mb:.0f} MiB: upload {mb / up:.0f} MiB/s, verified download {mb / down:.0f} MiB/s "
                f"(sha256 checked while streaming)"
            )
            if shutil.which("curl"):
                c_up = best(
                    lambda: subprocess.run(
                        ["curl", "-s", "-T", str(blob), f"{url}/cas/{digest}"], check=True
                    ),
                    args.runs,
                )
                c_down = best(
                    lambda: subprocess.run(
                        ["curl", "-s", "-o", str(tmp / "curl.bin"), f"{url}/cas/{digest}"], check=True
                    ),
                    args.runs,
                )
                print(
                    f"curl, same blob: upload {mb / c_up:.0f} MiB/s, download {mb / c_down:.0f} MiB/s (no hashing)"
                )
            blob.unlink()

            publisher = demo(tmp / "publisher")
            seconds, doc = cli(publisher, "build", "--remote-cache", url + "/team")
            print(f"demo from scratch, write-through: {seconds:.2f} s, {doc['steps']['run']} steps run")
            checkout = demo(tmp / "checkout")
            seconds, doc = cli(checkout, "build", "--remote-cache", url + "/team")
            print(f"clean checkout from the remote:   {seconds:.2f} s, {doc['steps']['run']} steps run")
            local = demo(tmp / "local")
            seconds, doc = cli(local, "build")
            print(f"same checkout built locally:      {seconds:.2f} s, {doc['steps']['run']} steps run")
            dead = f"http://127.0.0.1:{free_port()}"
            plain = min(cli(checkout, "build")[0] for _ in range(args.runs))
            remote_on = min(cli(checkout, "build", "--remote-cache", dead)[0] for _ in range(args.runs))
            print(
                f"no-op build: {plain:.3f} s without a remote, {remote_on:.3f} s with a dead one configured"
            )
        finally:
            proc.send_signal(signal.SIGQUIT)
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()

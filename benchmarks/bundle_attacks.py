"""What hostile bundle archives cost a device: wall time, the loader's peak memory and the bytes it
leaves under the install root, for `loader.py verify` and `loader.py install --unsigned-ok` on a
1 GiB gzip bomb (unlisted entry), 1 GiB of zeros after the end marker, a 256 MiB PAX header, a
64 MiB GNU long name and a path 120k folders deep (issue 14). Prints figures; asserts nothing.

    python benchmarks/bundle_attacks.py"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import bundle_helpers as bombs  # noqa: E402  (the tamper matrix's archive builders)

from edgebuild.bundle import BundleSpec, keygen, write_bundle  # noqa: E402
from edgebuild.bundle.keys import load_private_key  # noqa: E402

ATTACKS = {
    "1 GiB gzip bomb, unlisted entry": lambda m: bombs.unlisted_entry(m, 1024),
    "1 GiB of zeros after the end": lambda m: bombs.after_end(m, 1024),
    "256 MiB PAX header": lambda m: bombs.pax_header(m, 256),
    "64 MiB GNU long name": lambda m: bombs.gnu_long_name(m, 64),
    "path 120k folders deep": lambda m: bombs.deep_path(m, 120_000),
}


# Runs the loader in this child and reports its own peak memory (VmHWM counts only the process
# after exec; ru_maxrss would include the forked parent's pages).
CHILD = """import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")]
    sys.stderr.write("\\npeak-kB %s\\n" % (hwm[0] if hwm else "0"))
"""


def run(loader: Path, *args: str) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, exit status, first stderr line) of one loader command."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(loader), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    peak = int(lines[-1].split()[1]) / 1024 if lines and lines[-1].startswith("peak-kB") else float("nan")
    return seconds, peak, proc.returncode, (lines or [""])[0]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bundle-attacks-") as tmp:
        tmp = Path(tmp)
        keygen(tmp / "keys")
        model = tmp / "model.bin"
        model.write_bytes(np.random.default_rng(0).bytes(1 << 20))
        spec = BundleSpec(
            project="demo",
            version="1.0.0",
            target="cpu",
            device="cpu",
            recipe="onnxruntime",
            runtime="onnxruntime",
            artifacts={"model.onnx": model},
            io={"inputs": [], "outputs": []},
            selftest=None,
        )
        bundle = write_bundle(spec, tmp / "bundles", load_private_key(tmp / "keys" / "edgebuild.key"))
        with tarfile.open(bundle) as tar:
            tar.extractall(tmp / "unpacked", filter="data")
        loader = tmp / "unpacked" / "demo-cpu-1.0.0" / "loader.py"
        members = bombs.read_members(bundle)
        print(
            f"{'attack':<34} {'archive':>9} {'command':<8} {'time':>7} {'peak RSS':>9} {'written':>9}  outcome"
        )
        for name, make in ATTACKS.items():
            archive = tmp / "attack.tar.gz"
            archive.write_bytes(make(members))
            size = f"{archive.stat().st_size / 1e6:.1f} MB"
            for command in ("verify", "install"):
                root = tmp / "root"
                args = [command, str(archive)] + (
                    ["--root", str(root), "--unsigned-ok"] if command == "install" else []
                )
                seconds, rss, code, line = run(loader, *args)
                written = folder_bytes(root)
                print(
                    f"{name:<34} {size:>9} {command:<8} {seconds:6.2f}s {rss:7.1f} MB {written:7d} B  "
                    f"exit {code}: {line[:70]}"
                )
                subprocess.run(["rm", "-rf", str(root)], check=True)


if __name__ == "__main__":
    main()

"""How long writing, verifying and unpacking a bundle takes for a model of a given size, and the
peak memory it needs. Prints figures; asserts nothing.

    python benchmarks/bundle_throughput.py [--mb 256]

The artifact is half random bytes (incompressible, like quantized weights) and half float32 noise
rounded to fp16 precision (compresses somewhat, like fp16/fp32 weights)."""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgebuild.bundle import BundleSpec, keygen, unpack_bundle, verify_bundle, write_bundle
from edgebuild.bundle.keys import load_private_key
from edgebuild.hashing import sha256_file


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, action):
    start = time.perf_counter()
    result = action()
    print(f"{label:<38} {time.perf_counter() - start:8.2f} s   peak RSS {peak_rss_mb():7.1f} MB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256, help="artifact size in MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bundle-bench-") as tmp:
        work = Path(tmp)
        artifact = work / "model.bin"
        rng = np.random.default_rng(0)
        half = args.mb * (1 << 20) // 2
        chunk = 8 << 20  # written in chunks so the peak RSS below reflects the bundle operations
        with open(artifact, "wb") as out:
            for _ in range(half // chunk):
                out.write(rng.bytes(chunk))
            for _ in range(half // chunk):
                out.write(rng.standard_normal(chunk // 4).astype(np.float16).astype(np.float32).tobytes())
        selftest = work / "selftest.npz"
        np.savez(
            selftest,
            **{
                "input.x": np.zeros((1, 4), np.float32),
                "expected.y": np.zeros((1, 3), np.float32),
                "atol": np.array(1e-5),
                "rtol": np.array(1e-4),
            },
        )
        private, public = keygen(work / "keys")
        key = load_private_key(private)
        spec = BundleSpec(
            project="bench",
            version="1.0.0",
            target="cpu",
            device="cpu",
            recipe="onnxruntime",
            runtime="onnxruntime",
            artifacts={"model.onnx": artifact},
            io={"inputs": [], "outputs": []},
            selftest=selftest,
        )
        print(f"artifact: {artifact.stat().st_size / (1 << 20):.0f} MiB, python {sys.version.split()[0]}")
        path = timed("write_bundle", lambda: write_bundle(spec, work / "a", key))
        size = path.stat().st_size
        print(
            f"bundle size {size / (1 << 20):.1f} MiB ({size / artifact.stat().st_size:.3f} of the artifact)"
        )
        again = timed("write_bundle again, other folder", lambda: write_bundle(spec, work / "b", key))
        same = sha256_file(path) == sha256_file(again)
        print(f"identical bytes on rewrite: {same}")
        timed("write_bundle same version (no-op)", lambda: write_bundle(spec, work / "a", key))
        timed("verify_bundle (signature + checksums)", lambda: verify_bundle(path, public))
        timed(
            "unpack_bundle (verify while unpacking)", lambda: unpack_bundle(path, work / "unpacked", public)
        )
        loader = work / "unpacked" / "bench-cpu-1.0.0" / "loader.py"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(loader), "verify", str(path), "--key", str(public)],
            capture_output=True,
            text=True,
        )
        child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"{'loader.py verify ARCHIVE (subprocess)':<38} {time.perf_counter() - start:8.2f} s   "
            f"peak RSS {child_rss:7.1f} MB   rc {done.returncode}"
        )


if __name__ == "__main__":
    main()

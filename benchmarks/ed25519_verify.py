"""Milliseconds per manifest verification with the loader's pure-Python Ed25519
(edgebuild/bundle/ed25519_verify.py), here and scaled to a Raspberry Pi-class CPU.

    python benchmarks/ed25519_verify.py [--runs 20] [--python /root/.pyenv/versions/3.7.16/bin/python ...]

Signs two manifests with `cryptography` (a typical one, ~3 KB, and a large one listing 2000 files,
~250 KB), then times `ed25519_verify` on them in this interpreter and in each --python interpreter
(default: pyenv's 3.7, the Coral Dev Board's Python, if present), each with nothing but the module.
Times are CPU time of the process (time.process_time), so other load on a shared machine does not
inflate them.

Scaling: each interpreter also times a reference workload, the classic 5-body planetary
simulation in plain Python, and the figure is scaled by (the published Raspberry Pi 4 time of that
workload) / (its time here). Source: "Performance Analysis of Languages on Raspberry Pi",
https://chaitanyamehta.github.io/projects/performance-analysis-of-programming-languages (Raspberry
Pi 4 Model B, Cortex-A72 1.5 GHz, performance governor: N-body, 5 million iterations, Python
158.263 s). Their program is not ours (same algorithm, other code), so the factor is approximate.
A Cortex-A53 board (Raspberry Pi 3, Coral Dev Board's i.MX 8M) is slower than the A72; the script
also prints twice the Pi 4 estimate for it (an assumption, not a measurement). Goal (issue 22):
under 1 s per manifest on a Pi-class CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent / "edgebuild" / "bundle" / "ed25519_verify.py"
PI4_NBODY_SECONDS = 158.263  # 5,000,000 steps, Raspberry Pi 4 (see the docstring for the source)
PI4_NBODY_STEPS = 5_000_000
A53_OVER_A72 = 2.0  # assumed slowdown of a Cortex-A53 against the Pi 4's A72

# Runs in every measured interpreter (Python 3.7 included): the verifier's module text and the
# n-body reference, timed; prints one JSON line.
PROBE = r"""
import json, runpy, sys, time
module, data_path, runs, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
verify = runpy.run_path(module)["ed25519_verify"]
data = json.load(open(data_path))
key = bytes.fromhex(data["key"])
results = {}
for name, case in sorted(data["cases"].items()):
    message, signature = bytes.fromhex(case["message"]), bytes.fromhex(case["signature"])
    assert verify(key, signature, message), name
    best = None
    for _ in range(runs):
        start = time.process_time()
        verify(key, signature, message)
        elapsed = time.process_time() - start
        best = elapsed if best is None else min(best, elapsed)
    results[name] = best * 1000.0

def nbody(steps):
    # Sun, Jupiter, Saturn, Uranus, Neptune: positions (AU), velocities (AU/day * 365.24), masses
    pi, days = 3.141592653589793, 365.24
    solar = 4 * pi * pi
    bodies = [
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], solar],
        [[4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01],
         [1.66007664274403694e-03 * days, 7.69901118419740425e-03 * days, -6.90460016972063023e-05 * days],
         9.54791938424326609e-04 * solar],
        [[8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01],
         [-2.76742510726862411e-03 * days, 4.99852801234917238e-03 * days, 2.30417297573763929e-05 * days],
         2.85885980666130812e-04 * solar],
        [[1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01],
         [2.96460137564761618e-03 * days, 2.37847173959480950e-03 * days, -2.96589568540237556e-05 * days],
         4.36624404335156298e-05 * solar],
        [[1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01],
         [2.68067772490389322e-03 * days, 1.62824170038242295e-03 * days, -9.51592254519715870e-05 * days],
         5.15138902046611451e-05 * solar],
    ]
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    dt = 0.01
    for _ in range(steps):
        for ((p1, v1, m1), (p2, v2, m2)) in pairs:
            dx, dy, dz = p1[0] - p2[0], p1[1] - p2[1], p1[2] - p2[2]
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** -1.5)
            b1, b2 = m1 * mag, m2 * mag
            v1[0] -= dx * b2; v1[1] -= dy * b2; v1[2] -= dz * b2
            v2[0] += dx * b1; v2[1] += dy * b1; v2[2] += dz * b1
        for (p, v, m) in bodies:
            p[0] += dt * v[0]; p[1] += dt * v[1]; p[2] += dt * v[2]

start = time.process_time()
nbody(steps)
results["nbody_seconds"] = time.process_time() - start
results["python"] = sys.version.split()[0]
print(json.dumps(results))
"""


def make_cases() -> dict:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    files = lambda n: {f"model/part-{i:05d}.bin": {"sha256": f"{i:064x}", "size": i * 1000} for i in range(n)}
    manifests = {
        "typical manifest (5 files)": {
            "project": "demo",
            "target": "coral",
            "version": "1.0.0",
            "files": files(5),
            "metrics": {"accuracy": 0.985},
            "padding": "x" * 2500,
        },
        "large manifest (2000 files)": {
            "project": "demo",
            "target": "big",
            "version": "1.0.0",
            "files": files(2000),
        },
    }
    cases = {}
    for name, manifest in manifests.items():
        message = json.dumps(manifest, sort_keys=True, indent=2).encode()
        cases[name] = {"message": message.hex(), "signature": key.sign(message).hex(), "bytes": len(message)}
    return {"key": key.public_key().public_bytes_raw().hex(), "cases": cases}


def default_pythons() -> list[str]:
    versions = Path.home() / ".pyenv" / "versions"
    found = sorted(versions.glob("3.7.*/bin/python")) if versions.is_dir() else []
    return [str(found[-1])] if found else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20, help="verifications per manifest (the best is kept)")
    parser.add_argument("--nbody-steps", type=int, default=200_000, help="steps of the scaling reference")
    parser.add_argument("--python", action="append", help="also measure under this interpreter (repeatable)")
    args = parser.parse_args()
    data = make_cases()
    pythons = [sys.executable] + (args.python if args.python is not None else default_pythons())
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "cases.json"
        data_path.write_text(json.dumps(data))
        for python in pythons:
            done = subprocess.run(
                [
                    python,
                    "-I",
                    "-S",
                    "-c",
                    PROBE,
                    str(MODULE),
                    str(data_path),
                    str(args.runs),
                    str(args.nbody_steps),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout)
            nbody_here = result.pop("nbody_seconds") * PI4_NBODY_STEPS / args.nbody_steps
            factor = PI4_NBODY_SECONDS / nbody_here
            print(
                f"Python {result.pop('python')} ({python}): n-body reference {nbody_here:.1f} s here for "
                f"{PI4_NBODY_STEPS:,} steps vs {PI4_NBODY_SECONDS} s on a Raspberry Pi 4 -> factor {factor:.1f}"
            )
            for name, ms in result.items():
                size = data["cases"][name]["bytes"]
                print(
                    f"  {name}, {size:,} bytes: {ms:.2f} ms here; Raspberry Pi 4 (A72) ~{ms * factor:.0f} ms; "
                    f"Cortex-A53 (Pi 3, Coral Dev Board) ~{ms * factor * A53_OVER_A72:.0f} ms (goal < 1000 ms)"
                )


if __name__ == "__main__":
    main()

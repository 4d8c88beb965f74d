"""Two clean copies of a project, built separately with the same release key, give byte-identical
bundles and index (issue 8: same inputs -> same sha256)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from conftest import ort_demo_toml, run_cli, write_demo

TOML = ort_demo_toml(
    '\n[targets.orin]\nmodel = "digits"\nrecipe = "tensorrt"\ndevice = "jetson-orin-nano"\n'
    'precision = "int8"\n'
)


def _hashes(project) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((project / "bundles").iterdir())
    }


def test_two_clean_copies_give_identical_bundles(tmp_path):
    keys = tmp_path / "keys"
    subprocess.run([sys.executable, "-m", "edgebuild", "keygen", "--out", str(keys)], check=True)
    env = {"EDGEBUILD_SIGNING_KEY": str(keys / "edgebuild.key")}
    first = write_demo(tmp_path / "one" / "demo", TOML)
    second = write_demo(tmp_path / "elsewhere" / "two" / "demo", TOML)
    for project in (first, second):
        result = run_cli(project, "all", "--json", env=env)
        assert result.rc == 0, result.stderr
    one, two = _hashes(first), _hashes(second)
    assert set(one) >= {
        "demo-cpu-int8-1.0.0.tar.gz",
        "demo-orin-1.0.0.tar.gz",
        "index.json",
        "index.json.sig",
    }
    assert one == two
    bundle = first / "bundles" / "demo-orin-1.0.0.tar.gz"
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebuild",
            "verify",
            str(bundle),
            "--key",  # takes no -C
            str(keys / "edgebuild.pub.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr

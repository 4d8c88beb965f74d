"""The tamper matrix: every altered bundle is rejected, with the precise reason, both by
edgebuild's verify_bundle/unpack_bundle and by the generated loader.py (`verify` and `install`),
and unpacking never writes outside its target folder. Archive bombs (gzip, PAX, GNU long names,
deep paths, trailing data) are rejected at their header, before their payload is inflated or
written."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from edgebuild.bundle import BundleInvalid, unpack_bundle, verify_bundle, write_bundle
import bundle_helpers as bombs
from bundle_helpers import make_spec, read_members, run_loader, write_members

ROOT = "demo-cpu-fp32-1.0.0"
BUNDLED_FILES = [
    "README.md",
    "loader.py",
    "manifest.json",
    "manifest.sig",
    "model.onnx",
    "selftest/selftest.npz",
]


def _flip(name):
    def mutate(members, ctx):
        for info, data in members:
            if info.name == f"{ROOT}/{name}":
                position = len(data) // 2
                data = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]
            yield info, data

    return mutate


def _remove(name):
    def mutate(members, ctx):
        return [(i, d) for i, d in members if i.name != f"{ROOT}/{name}"]

    return mutate


def _add(name, kind=tarfile.REGTYPE, linkname="", data=b"payload\n"):
    def mutate(members, ctx):
        info = tarfile.TarInfo(name.format(root=ROOT, sandbox=ctx["sandbox"]))
        info.type = kind
        info.linkname = linkname
        info.mode = 0o644
        return list(members) + [(info, data if kind == tarfile.REGTYPE else None)]

    return mutate


def _replace_with_symlink(name, target):
    def mutate(members, ctx):
        out = []
        for info, data in members:
            if info.name == f"{ROOT}/{name}":
                info = tarfile.TarInfo(info.name)
                info.type, info.linkname, data = tarfile.SYMTYPE, target, None
            out.append((info, data))
        return out

    return mutate


def _edit_manifest(members, ctx):
    for info, data in members:
        if info.name == f"{ROOT}/manifest.json":
            manifest = json.loads(data)
            manifest["metrics"]["latency_ms"] = 0.001  # a plausible lie, files untouched
            data = json.dumps(manifest, sort_keys=True, indent=2).encode() + b"\n"
        yield info, data


def _grow(name):
    def mutate(members, ctx):
        for info, data in members:
            if info.name == f"{ROOT}/{name}":
                data = data + b"\0" * 4096
            yield info, data

    return mutate


def _payload_first(members, ctx):
    members = list(members)
    model = [m for m in members if m[0].name == f"{ROOT}/model.onnx"]
    return [members[0], *model, *[m for m in members[1:] if m not in model]]


class Raw:
    """A mutation that writes the archive bytes itself: (members, ctx) -> gzip bytes."""

    def __init__(self, make):
        self.make = make


CASES_RAW = {
    "gzip bomb: 1 GiB unlisted entry": (
        Raw(lambda m, ctx: bombs.unlisted_entry(m, 1024)),
        "file not listed in manifest: zeros.bin",
    ),
    "gzip bomb after the end marker": (
        Raw(lambda m, ctx: bombs.after_end(m, 1024)),
        "trailing data after the end",
    ),
    "PAX header bomb: 256 MiB": (
        Raw(lambda m, ctx: bombs.pax_header(m, 256)),
        "PAX header of 268435456 bytes",
    ),
    "GNU long-name bomb: 64 MiB": (
        Raw(lambda m, ctx: bombs.gnu_long_name(m, 64)),
        "GNU long-name header of 67108864 bytes",
    ),
    "path 120k folders deep": (Raw(lambda m, ctx: bombs.deep_path(m, 120_000)), "PAX header of"),
    "path 100 folders deep": (Raw(lambda m, ctx: bombs.deep_path(m, 100)), "deeper than 32 folders"),
    "path 2000 folders deep": (Raw(lambda m, ctx: bombs.deep_path(m, 2000)), "longer than 1024 characters"),
    "trailing garbage after the gzip stream": (
        Raw(lambda m, ctx: bombs.gz(bombs.tar_prefix(m) + bombs.END) + b"trailing garbage" * 64),
        "trailing data",
    ),
    "trailing tar entry after the end marker": (
        Raw(
            lambda m, ctx: bombs.gz(
                bombs.tar_prefix(m) + b"\0" * 1024 + bombs.tar_prefix([m[-1]]) + bombs.END
            )
        ),
        "trailing data",
    ),
}

SIGNATURE = "signature of manifest.json does not verify"
CASES = {
    **{
        f"flipped byte in {name}": (
            _flip(name),
            SIGNATURE if name.startswith("manifest.") else f"checksum mismatch for {name}",
        )
        for name in BUNDLED_FILES
    },
    "file added": (_add("{root}/extra.bin"), "file not listed in manifest: extra.bin"),
    "file added in a new folder": (_add("{root}/sub/extra.py"), "file not listed in manifest: sub/extra.py"),
    "model removed": (_remove("model.onnx"), "file listed in manifest is missing: model.onnx"),
    "signature removed": (_remove("manifest.sig"), "manifest.sig is missing"),
    "manifest removed": (_remove("manifest.json"), "manifest.json is missing"),
    "manifest edited": (_edit_manifest, SIGNATURE),
    "signed by another key": ("other-key", SIGNATURE),
    "truncated in the middle": ("truncate-half", "truncated"),
    "truncated gzip trailer": ("truncate-tail", "truncated"),
    "not gzip at all": ("garbage", "not a gzip tar file"),
    "entry with .. inside": (_add("{root}/../evil.txt"), "'..'"),
    "entry with .. at the top": (_add("../evil.txt"), "'..'"),
    "absolute path": (_add("{sandbox}/absolute-evil.txt"), "absolute path"),
    "symlink added": (_add("{root}/passwd", tarfile.SYMTYPE, "/etc/passwd"), "link in archive"),
    "model replaced by a symlink": (_replace_with_symlink("model.onnx", "/etc/passwd"), "link in archive"),
    "hard link": (_add("{root}/hard", tarfile.LNKTYPE, f"{ROOT}/model.onnx"), "link in archive"),
    "character device": (_add("{root}/tty", tarfile.CHRTYPE), "special file"),
    "block device": (_add("{root}/disk", tarfile.BLKTYPE), "special file"),
    "fifo": (_add("{root}/pipe", tarfile.FIFOTYPE), "special file"),
    "entry outside the bundle folder": (_add("elsewhere/x.txt"), "outside the bundle folder"),
    "duplicate entry": (lambda m, ctx: list(m) + [m[-1]], "duplicate entry"),
    "file where a folder is": (_add("{root}/selftest"), "duplicate entry"),
    "entry below a file": (_add("{root}/model.onnx/inner.txt"), "entry inside a file"),
    "unlisted folder": (_add("{root}/empty", tarfile.DIRTYPE), "folder not listed in manifest: empty"),
    "planted __pycache__": (
        _add("{root}/__pycache__/loader.cpython-311.pyc"),
        "file not listed in manifest: __pycache__/loader.cpython-311.pyc",
    ),
    "model grown past its declared size": (_grow("model.onnx"), "size mismatch for model.onnx"),
    "payload before the signed head": (_payload_first, "manifest.json is missing from the head"),
    **CASES_RAW,
}


@pytest.fixture
def sandbox(tmp_path) -> Path:
    """Folder that must hold nothing but the unpack target afterwards."""
    path = tmp_path / "sandbox"
    (path / "dest").mkdir(parents=True)
    return path


def make_tampered(case: str, bundle: Path, work: Path, other_key, sandbox: Path, tmp_path: Path) -> Path:
    mutation, _reason = CASES[case]
    out = tmp_path / "tampered" / bundle.name
    out.parent.mkdir()
    raw = bundle.read_bytes()
    if mutation == "other-key":
        return write_bundle(make_spec(work), out.parent, other_key)
    if mutation == "truncate-half":
        out.write_bytes(raw[: len(raw) // 2])
    elif mutation == "truncate-tail":
        out.write_bytes(raw[:-4])  # only the gzip size trailer is missing
    elif mutation == "garbage":
        out.write_bytes(b"not a bundle\n" * 100)
    elif isinstance(mutation, Raw):
        out.write_bytes(mutation.make(read_members(bundle), {"sandbox": sandbox}))
    else:
        members = read_members(bundle)
        write_members(out, list(mutation(members, {"sandbox": sandbox})))
    return out


def assert_nothing_escaped(sandbox: Path) -> None:
    assert sorted(p.name for p in sandbox.iterdir()) == ["dest"]
    assert not (sandbox / "absolute-evil.txt").exists()
    assert not (sandbox.parent / "evil.txt").exists()


def test_matrix_covers_every_bundled_file(bundle, keypair):
    manifest = verify_bundle(bundle, keypair[1])
    assert sorted([*manifest["files"], "manifest.json", "manifest.sig"]) == BUNDLED_FILES


@pytest.mark.parametrize("case", sorted(CASES))
def test_verify_bundle_rejects(case, bundle, work, keypair, other_keypair, sandbox, tmp_path):
    tampered = make_tampered(case, bundle, work, other_keypair[0], sandbox, tmp_path)
    reason = CASES[case][1]
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(tampered, keypair[1])
    assert reason in str(caught.value)
    with pytest.raises(BundleInvalid) as caught:
        unpack_bundle(tampered, sandbox / "dest", keypair[1])
    assert reason in str(caught.value)
    assert list((sandbox / "dest").iterdir()) == []
    assert_nothing_escaped(sandbox)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_loader_rejects(case, bundle, unpacked, work, keypair, other_keypair, sandbox, tmp_path):
    tampered = make_tampered(case, bundle, work, other_keypair[0], sandbox, tmp_path)
    reason = CASES[case][1]
    loader = unpacked / "loader.py"
    checked = run_loader(loader, "verify", str(tampered), "--key", str(keypair[1]))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert reason in checked.stderr
    root = sandbox / "dest"
    installed = run_loader(loader, "install", str(tampered), "--root", str(root), "--key", str(keypair[1]))
    assert installed.returncode == 1, installed.stdout + installed.stderr
    assert reason in installed.stderr
    assert list((root / "versions").iterdir()) == [] and list((root / "staging").iterdir()) == []
    assert not (root / "active").exists()
    assert_nothing_escaped(sandbox)


def test_intact_bundle_passes_both(bundle, unpacked, keypair):
    assert verify_bundle(bundle, keypair[1])["version"] == "1.0.0"
    checked = run_loader(unpacked / "loader.py", "verify", str(bundle), "--key", str(keypair[1]))
    assert checked.returncode == 0, checked.stderr
    assert "signature verified" in checked.stdout


@pytest.mark.parametrize(
    "change", ["flip model", "add file", "remove selftest", "symlink", "planted pyc", "deep folders"]
)
def test_loader_rejects_tampered_unpacked_folder(change, unpacked, keypair, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(unpacked, folder)
    if change == "flip model":
        data = bytearray((folder / "model.onnx").read_bytes())
        data[len(data) // 2] ^= 1
        (folder / "model.onnx").write_bytes(bytes(data))
        reason = "checksum mismatch for model.onnx"
    elif change == "add file":
        (folder / "sitecustomize.py").write_text("print('owned')\n")
        reason = "file not listed in manifest: sitecustomize.py"
    elif change == "remove selftest":
        (folder / "selftest" / "selftest.npz").unlink()
        reason = "file listed in manifest is missing: selftest/selftest.npz"
    elif change == "symlink":
        (folder / "model.onnx").unlink()
        (folder / "model.onnx").symlink_to(unpacked / "model.onnx")
        reason = "link in bundle folder: model.onnx"
    elif change == "deep folders":
        deep = folder.joinpath(*["d"] * 40)
        deep.mkdir(parents=True)
        (deep / "x").write_bytes(b"x")
        reason = "folder deeper than 32 levels in bundle folder"
    else:
        # bytecode Python would run on `import loader` instead of the verified loader.py
        (folder / "__pycache__").mkdir()
        (folder / "__pycache__" / "loader.cpython-311.pyc").write_bytes(b"planted")
        reason = "file not listed in manifest: __pycache__/loader.cpython-311.pyc"
    # the copy's own loader checks its own folder (the default target of `verify` and `selftest`)
    for args in (["verify"], ["selftest", "--key", str(keypair[1])]):
        result = run_loader(folder / "loader.py", *args)
        assert result.returncode == 1, result.stdout + result.stderr
        assert reason in result.stderr


def test_importing_the_loader_leaves_no_bytecode(unpacked, keypair, tmp_path):
    """`import loader` from a bundle folder must leave it exactly as verified: no __pycache__."""
    import shutil
    import subprocess
    import sys

    from bundle_helpers import isolated_env

    folder = tmp_path / "copy"
    shutil.copytree(unpacked, folder)
    code = f"import loader; print(loader.load(public_key={str(keypair[1])!r}).manifest['version'])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "1.0.0", done.stderr
    assert not (folder / "__pycache__").exists()
    assert run_loader(folder / "loader.py", "verify", "--key", str(keypair[1])).returncode == 0


@pytest.mark.parametrize(
    "case",
    ["gzip bomb: 1 GiB unlisted entry", "PAX header bomb: 256 MiB", "trailing garbage after the gzip stream"],
)
def test_edgebuild_verify_cli_rejects_bombs(case, bundle, work, keypair, other_keypair, sandbox, tmp_path):
    import subprocess
    import sys

    tampered = make_tampered(case, bundle, work, other_keypair[0], sandbox, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "edgebuild", "verify", str(tampered), "--key", str(keypair[1])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert CASES[case][1] in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "case",
    [
        "gzip bomb: 1 GiB unlisted entry",
        "PAX header bomb: 256 MiB",
        "GNU long-name bomb: 64 MiB",
        "path 120k folders deep",
    ],
)
def test_loader_refuses_bombs_under_tight_limits(
    case, bundle, unpacked, work, keypair, other_keypair, sandbox, tmp_path
):
    """With files capped at 16 MiB, the address space at 256 MiB and CPU time at 20 s, `install`
    still refuses each bomb with its reason: it never writes or holds what the bomb inflates to
    (before issue 14 the loader wrote the 1 GiB into staging/, held a whole PAX header in memory and
    spent 46 s on the deep path)."""
    import resource
    import subprocess
    import sys

    from bundle_helpers import isolated_env

    def limits():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (20, 20))

    tampered = make_tampered(case, bundle, work, other_keypair[0], sandbox, tmp_path)
    root = sandbox / "dest"
    done = subprocess.run(
        [
            sys.executable,
            str(unpacked / "loader.py"),
            "install",
            str(tampered),
            "--root",
            str(root),
            "--key",
            str(keypair[1]),
        ],
        preexec_fn=limits,
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert CASES[case][1] in done.stderr and "Error" not in done.stderr
    assert list((root / "staging").iterdir()) == []

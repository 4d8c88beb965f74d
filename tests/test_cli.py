"""The command line on click (issue 17 item 4): commands load lazily, each declares only the options
that mean something for it, shell completion comes from click, and user mistakes are one line on
stderr with exit 2. Fast: nothing here builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgebuild import __version__
from edgebuild.cli import COMMANDS, main, parse_args


def _edgebuild(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgebuild", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_imports_no_command_module_and_no_runtime():
    code = (
        "import json, sys\nfrom edgebuild.cli import main\nrc = main(['--help'])\n"
        "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules)}), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result["rc"] == 0
    loaded = set(result["modules"])
    assert "edgebuild.cli" in loaded
    assert not {m for m in loaded if m.startswith("edgebuild.commands.")}, loaded
    assert not {"onnxruntime", "onnx", "numpy", "edgebuild.scheduler"} & loaded
    for name in COMMANDS:  # every command is listed with its help, from the table
        assert name in proc.stdout


def test_every_command_declares_its_options(capsys):
    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        assert f"Usage: edgebuild {name}" in capsys.readouterr().out


def test_keygen_and_verify_offer_only_their_options(capsys):
    assert main(["keygen", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--out" in text and "--quiet" in text
    for meaningless in ("--jobs", "--json", "--strict", "--project", "--remote-cache", "--executor"):
        assert meaningless not in text
    assert main(["verify", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--key" in text and "--json" in text
    assert "--jobs" not in text and "--strict" not in text
    assert main(["build", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "--jobs",
        "--json",
        "--strict",
        "--project",
        "--remote-cache",
        "--executor",
        "--dry-run",
        "--trust-project-toolchains",
    ):
        assert option in text


def test_every_command_still_accepts_the_contract_options(tmp_path):
    """DESIGN.md: -C, -j, --json, --strict, -v and -q are accepted after any command name; where a
    command has no use for one it is hidden from its help and has no effect (scripts keep working)."""
    proc = _edgebuild(
        "keygen", "-C", str(tmp_path), "-j", "4", "--json", "--strict", "--out", str(tmp_path / "k")
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "k" / "edgebuild.pub.pem").exists()
    proc = _edgebuild(
        "verify",
        "-C",
        str(tmp_path),
        "--strict",
        "-j",
        "2",
        str(tmp_path / "none.tar.gz"),
        "--key",
        str(tmp_path / "k" / "edgebuild.pub.pem"),
    )
    assert proc.returncode == 2 and "none.tar.gz" in proc.stderr and "No such option" not in proc.stderr


@pytest.mark.parametrize(
    "args,named",
    [
        (["keygen", "--out", "k", "--jobz", "4"], "--jobz"),
        (["build", "--no-such-option"], "--no-such-option"),
        (["frobnicate"], "frobnicate"),
        (["bulid"], "did you mean 'build'?"),
        (["graph", "--format", "png"], "png"),
        (["keygen"], "--out"),
    ],
)
def test_usage_mistake_is_one_line_and_exit_2(args, named):
    proc = _edgebuild(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgebuild") and ": error: " in lines[0] and named in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_configuration_error_from_a_command_is_one_line_and_v_adds_the_traceback(tmp_path):
    missing = tmp_path / "nope.tar.gz"
    proc = _edgebuild("verify", str(missing))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"edgebuild: error: bundle not found: {missing}"
    loud = _edgebuild("verify", str(missing), "-v")
    assert loud.returncode == 2 and "Traceback" in loud.stderr


def test_version_and_no_command():
    assert _edgebuild("--version").stdout.strip() == f"edgebuild {__version__}"
    bare = _edgebuild()
    assert bare.returncode == 2 and "Commands:" in bare.stdout


def test_shell_completion_script_and_answers():
    script = _edgebuild(env={"_EDGEBUILD_COMPLETE": "bash_source"})
    assert script.returncode == 0
    assert (
        "_edgebuild_completion()" in script.stdout
        and "complete -o nosort -F _edgebuild_completion edgebuild" in script.stdout
    )
    names = _edgebuild(
        env={"_EDGEBUILD_COMPLETE": "bash_complete", "COMP_WORDS": "edgebuild sp", "COMP_CWORD": "1"}
    )
    assert names.stdout.split() == ["plain,split-plan"]
    options = _edgebuild(
        env={"_EDGEBUILD_COMPLETE": "bash_complete", "COMP_WORDS": "edgebuild keygen --", "COMP_CWORD": "2"}
    )
    assert "plain,--out" in options.stdout.split() and "plain,--jobs" not in options.stdout


def test_completion_offers_the_project_targets(tmp_path):
    (tmp_path / "targets.toml").write_text(
        '[targets.cpu-int8]\nmodel = "m"\n[targets.cpu-fp16]\nmodel = "m"\n[targets.coral]\nmodel = "m"\n'
    )
    complete = {"_EDGEBUILD_COMPLETE": "bash_complete"}
    positional = _edgebuild(
        env={**complete, "COMP_WORDS": f"edgebuild build -C {tmp_path} cpu", "COMP_CWORD": "4"}
    )
    assert sorted(positional.stdout.split()) == ["plain,cpu-fp16", "plain,cpu-int8"]
    option = subprocess.run(
        [sys.executable, "-m", "edgebuild"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **complete, "COMP_WORDS": "edgebuild bundle --target c", "COMP_CWORD": "3"},
        timeout=120,
    )
    assert sorted(option.stdout.split()) == ["plain,coral", "plain,cpu-fp16", "plain,cpu-int8"]
    (tmp_path / "targets.toml").write_text("[targets\n")  # a broken project completes nothing, quietly
    broken = _edgebuild(env={**complete, "COMP_WORDS": f"edgebuild build -C {tmp_path} c", "COMP_CWORD": "4"})
    assert broken.returncode == 0 and broken.stdout.strip() == "" and broken.stderr == ""


def test_args_keep_the_shape_commands_read():
    build = parse_args(["build", "a", "b", "-C", "proj", "--remote-cache", "", "-j", "3", "-n"])
    assert (build.command, build.targets, build.project, build.remote_cache, build.jobs, build.dry_run) == (
        "build",
        ["a", "b"],
        "proj",
        "",
        3,
        True,
    )
    assert parse_args(["build"]).targets == [] and parse_args(["build"]).remote_cache is None
    assert parse_args(["check"]).targets is None  # absent --target: every target
    assert parse_args(["bundle", "--target", "x", "--target", "y"]).targets == ["x", "y"]
    init = parse_args(["init", "m.onnx", "--device", "coral-usb", "--device", "pi5"])
    assert init.models == ["m.onnx"] and init.devices == ["coral-usb", "pi5"]
    everything = parse_args(["all", "--version", "2.0.0", "--delta-from", "1.0.0"])
    assert (everything.bundle_version, everything.delta_from, everything.max_ratio, everything.codecs) == (
        "2.0.0",
        "1.0.0",
        0.6,
        "zstd,zlib,bsdiff4",
    )

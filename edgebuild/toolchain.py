"""Toolchain environments: one virtualenv per recipe toolchain whose libraries conflict with others.

onnx2tf, for example, pins exact versions of tensorflow, numpy, onnx and onnxruntime; installing it
beside edgebuild would force those pins on every other step. A recipe's `[toolchain]` table names
the environment it needs:

    [toolchain]
    name = "onnx2tf"
    python = "3.11"                       # this interpreter, or one found under ~/.pyenv/versions
    requirements = ["onnx2tf==1.29.24", ...]
    no_deps = []                          # installed afterwards with `pip install --no-deps`

`ensure(spec)` creates the environment on first use under
`$EDGEBUILD_HOME/toolchains/<name>-<hash of spec>/` (EDGEBUILD_HOME defaults to ~/.cache/edgebuild)
and reuses it afterwards without touching the network, so builds work offline once it exists.
The environment's resolved distribution versions are recorded once in `versions.json`; they are
part of the action key of every step run in it and of the manifest's provenance.

Creation is atomic and safe under concurrent builds: a lock file serialises creators, the venv is
built in a temporary folder next to its final place and renamed into it (scripts under bin/ are
rewritten to name their final path), and only a fully installed environment is ever visible.

Only the standard library is used: edgebuild's own environment needs nothing extra for this.

Installing requirements runs their code (setup scripts, then the packages themselves in every step).
Built-in recipes are trusted; a project's own recipe that brings a toolchain not identical to a
built-in one is refused unless the user trusts the project (`require_trusted`): with
`--trust-project-toolchains` or EDGEBUILD_TRUST_PROJECT_TOOLCHAINS=1 in their environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

DEFAULT_NAME = "default"
TRUST_ENV = "EDGEBUILD_TRUST_PROJECT_TOOLCHAINS"
TRUST_FLAG = "--trust-project-toolchains"
SPEC_KEYS = {"name", "python", "requirements", "no_deps"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# `pkg==1.2.3`, optionally with extras or an environment marker; exact pins keep the key honest.
_PIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(\[[A-Za-z0-9_,.-]+\])?==[A-Za-z0-9_.+!-]+(\s*;.*)?$")

_VERSIONS_SCRIPT = (
    "import importlib.metadata as m, json, platform;"
    "d={};"
    "[d.__setitem__(x.metadata['Name'].lower().replace('_','-'), x.version) for x in m.distributions() if x.metadata['Name']];"
    "d['python']=platform.python_version();"
    "print(json.dumps(d, sort_keys=True))"
)


class ToolchainError(Exception):
    """A toolchain spec is invalid or its environment cannot be created; the message is one line
    the user can act on."""


@dataclass(frozen=True)
class Environment:
    name: str
    python: Path  # interpreter to run workers with
    versions: dict[str, str]  # distribution name (lower-case, '-') -> version, plus "python"
    root: Path | None = None  # the venv folder; None for edgebuild's own environment
    spec_hash: str = ""
    requirements: tuple[str, ...] = field(default=())

    def fingerprint(self) -> str:
        """Short stable hash of the resolved versions, for action keys."""
        blob = json.dumps(self.versions, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def home() -> Path:
    return Path(os.environ.get("EDGEBUILD_HOME") or Path.home() / ".cache" / "edgebuild")


def toolchains_dir() -> Path:
    return home() / "toolchains"


# ---------------------------------------------------------------------------------------- specs


def validate_spec(spec: dict[str, Any], where: str = "[toolchain]") -> dict[str, Any]:
    """Check a `[toolchain]` table and return it normalised. `where` names the file for errors."""
    if not isinstance(spec, dict):
        raise ToolchainError(f"{where}: must be a table")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ToolchainError(
            f"{where}: unknown key '{sorted(unknown)[0]}' (allowed: {', '.join(sorted(SPEC_KEYS))})"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ToolchainError(
            f"{where}.name: expected a name of letters, digits, '-', '_' or '.', got {name!r}"
        )
    if name == DEFAULT_NAME:
        return {"name": DEFAULT_NAME}
    python = str(spec.get("python", f"{sys.version_info.major}.{sys.version_info.minor}"))
    if not re.match(r"^3\.\d+$", python):
        raise ToolchainError(f'{where}.python: expected a version like "3.11", got {python!r}')
    out = {"name": name, "python": python}
    for key in ("requirements", "no_deps"):
        value = spec.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ToolchainError(f'{where}.{key}: expected a list of strings like "pkg==1.2.3"')
        for req in value:
            if not _PIN_RE.match(req.strip()):
                raise ToolchainError(f"{where}.{key}: '{req}' is not an exact pin (write pkg==VERSION)")
        out[key] = [v.strip() for v in value]
    if not out["requirements"] and not out["no_deps"]:
        raise ToolchainError(f"{where}.requirements: a toolchain needs at least one requirement")
    return out


def spec_hash(spec: dict[str, Any]) -> str:
    """Hash of what determines the environment's contents; the order of requirements does not matter."""
    spec = validate_spec(spec)
    canon = {
        "python": spec["python"],
        "requirements": sorted(spec["requirements"]),
        "no_deps": sorted(spec["no_deps"]),
    }
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()[:12]


def env_dir(spec: dict[str, Any]) -> Path:
    spec = validate_spec(spec)
    return toolchains_dir() / f"{spec['name']}-{spec_hash(spec)}"


# ----------------------------------------------------------------------------------- public API


def default_environment() -> Environment:
    """edgebuild's own interpreter, for steps that say `toolchain = "default"`."""
    return Environment(DEFAULT_NAME, Path(sys.executable), _current_versions(), None, "", ())


def lookup(spec: dict[str, Any]) -> Environment | None:
    """The environment for `spec` if it exists (no creation, no subprocess: reads versions.json)."""
    spec = validate_spec(spec)
    if spec["name"] == DEFAULT_NAME:
        return default_environment()
    return _load(env_dir(spec))


def ensure(spec: dict[str, Any], offline_ok: bool = True) -> Environment:
    """Return the environment for `spec`, creating it on first use.

    An existing environment is used as is, with no network access, so builds work offline once the
    toolchain is installed. With `offline_ok=False` an existing environment is also re-checked with
    `pip check` (local, no network) and rebuilt if it is inconsistent.
    """
    spec = validate_spec(spec)
    if spec["name"] == DEFAULT_NAME:
        return default_environment()
    target = env_dir(spec)
    env = _load(target)
    if env is not None and (offline_ok or _pip_check(env)):
        return env
    toolchains_dir().mkdir(parents=True, exist_ok=True)
    with _lock(target.with_name(f".{target.name}.lock")):
        env = _load(target)  # another build may have finished it while we waited
        if env is not None and (offline_ok or _pip_check(env)):
            return env
        if env is not None:
            _remove_tree(target)
        _create(spec, target)
        env = _load(target)
        assert env is not None
        return env


def install(spec: dict[str, Any], force: bool = False) -> Environment:
    """`edgebuild toolchain install`: create the environment now (rebuild it with force=True)."""
    spec = validate_spec(spec)
    if force and spec["name"] != DEFAULT_NAME:
        remove(env_dir(spec))
    return ensure(spec)


def list_environments() -> list[dict[str, Any]]:
    """Every installed environment: name, path, python, spec_hash, requirements, created, packages."""
    root = toolchains_dir()
    found = []
    if not root.is_dir():
        return found
    for d in sorted(root.iterdir()):
        env = _load(d)
        if env is None:
            continue
        info = json.loads((d / "spec.json").read_text())
        found.append(
            {
                "name": env.name,
                "path": str(d),
                "python": env.versions.get("python", ""),
                "spec_hash": env.spec_hash,
                "requirements": list(env.requirements),
                "created": info.get("created", ""),
                "packages": len(env.versions) - 1,
            }
        )
    return found


def remove(name_or_path: str | Path) -> list[Path]:
    """Delete environments by folder path, or every environment of a toolchain name. Returns what went."""
    path = Path(name_or_path)
    root = toolchains_dir()
    if path.is_absolute() or os.sep in str(name_or_path):
        victims = [path] if path.is_dir() else []
    else:
        victims = (
            [d for d in root.glob(f"{name_or_path}-*") if _load(d) and _load(d).name == str(name_or_path)]
            if root.is_dir()
            else []
        )
    for d in victims:
        with _lock(d.with_name(f".{d.name}.lock")):
            _remove_tree(d)
    return victims


def worker_pythonpath() -> str:
    """A PYTHONPATH entry that makes `import edgebuild` work in a toolchain interpreter and brings
    nothing else: a source checkout's root as is; for an installed edgebuild (whose parent is a
    site-packages full of packages built for another numpy), a folder holding only a link to it."""
    pkg = Path(__file__).resolve().parent
    parent = pkg.parent
    if parent.name not in ("site-packages", "dist-packages"):
        return str(parent)
    shim = home() / "pythonpath" / hashlib.sha256(str(pkg).encode()).hexdigest()[:12]
    link = shim / "edgebuild"
    if not link.exists():
        shim.mkdir(parents=True, exist_ok=True)
        tmp = shim / f".edgebuild.{os.getpid()}"
        try:
            tmp.symlink_to(pkg, target_is_directory=True)
            os.replace(tmp, link)
        except FileExistsError:
            pass
    return str(shim)


def user_trusts_projects(flag: bool = False) -> bool:
    """The user's standing decision: the command-line flag, or EDGEBUILD_TRUST_PROJECT_TOOLCHAINS=1."""
    return flag or os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def require_trusted(recipes, flag: bool = False) -> None:
    """Refuse a project-defined toolchain (one that no built-in recipe defines) unless the user
    trusts the project. `recipes`: Recipe objects whose toolchain would be installed or used.
    Raises ConfigError (exit 2) naming the recipe file."""
    if user_trusts_projects(flag):
        return
    from edgebuild.errors import ConfigError
    from edgebuild.recipes import builtin_recipe_dir

    builtin_dir = builtin_recipe_dir().resolve()
    builtin: set[str] | None = None
    for recipe in recipes:
        if not recipe.toolchain or Path(recipe.file).resolve().parent == builtin_dir:
            continue
        if builtin is None:
            builtin = _builtin_toolchains(builtin_dir)
        if _identity(recipe.toolchain) in builtin:
            continue  # the same environment a built-in recipe installs
        raise ConfigError(
            f"this project's own toolchain would be pip-installed and run at build time "
            f"(its code runs with your rights); pass {TRUST_FLAG} or set {TRUST_ENV}=1 "
            "only if you trust this project",
            recipe.file,
            "toolchain.requirements",
        )


def _identity(spec) -> str:
    try:
        valid = validate_spec(spec)
    except ToolchainError:
        return ""
    return DEFAULT_NAME if valid["name"] == DEFAULT_NAME else f"{valid['name']}-{spec_hash(valid)}"


def _builtin_toolchains(folder: Path) -> set[str]:
    import tomllib

    found = {DEFAULT_NAME}
    for file in folder.glob("*.toml"):
        try:
            spec = tomllib.loads(file.read_text(encoding="utf-8")).get("toolchain")
        except (OSError, ValueError):
            continue
        if spec:
            found.add(_identity(spec))
    found.discard("")
    return found


# -------------------------------------------------------------------------------------- helpers


def _load(d: Path) -> Environment | None:
    versions_file, spec_file = d / "versions.json", d / "spec.json"
    if not (versions_file.is_file() and spec_file.is_file()):
        return None
    spec = json.loads(spec_file.read_text())
    return Environment(
        spec["name"],
        d / "bin" / "python",
        json.loads(versions_file.read_text()),
        d,
        spec["hash"],
        tuple(spec["requirements"]) + tuple(spec["no_deps"]),
    )


def _current_versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            out[name.lower().replace("_", "-")] = dist.version
    out["python"] = platform.python_version()
    return out


def find_python(version: str) -> Path:
    """An interpreter of `version` ("3.12"): this one, ~/.pyenv/versions/<version>.*, or PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        base = getattr(sys, "_base_executable", None) or sys.executable
        return Path(base)
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = sorted(
        pyenv.glob(f"{version}.*"), key=lambda p: [int(x) for x in re.findall(r"\d+", p.name)]
    )
    for cand in reversed(candidates):
        exe = cand / "bin" / f"python{version}"
        if exe.is_file():
            return exe
    exe = shutil.which(f"python{version}")
    if exe and "shims" not in exe:
        return Path(exe)
    raise ToolchainError(
        f"toolchain needs Python {version}, which is not installed here (looked in {pyenv} and on PATH)"
    )


def _create(spec: dict[str, Any], target: Path) -> None:
    base = find_python(spec["python"])
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    _remove_tree(tmp)
    try:
        _run([str(base), "-m", "venv", str(tmp)], f"creating the venv for toolchain '{spec['name']}'")
        py = str(tmp / "bin" / "python")
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
        (tmp / "requirements.txt").write_text("\n".join(spec["requirements"]) + "\n")
        if spec["requirements"]:
            _run(pip + ["-r", str(tmp / "requirements.txt")], f"installing toolchain '{spec['name']}'")
        if spec["no_deps"]:
            _run(
                pip + ["--no-deps"] + spec["no_deps"], f"installing toolchain '{spec['name']}' (no-deps part)"
            )
        versions = json.loads(_run([py, "-c", _VERSIONS_SCRIPT], "reading the toolchain's versions"))
        _retarget_scripts(tmp, target)
        (tmp / "versions.json").write_text(json.dumps(versions, indent=1, sort_keys=True) + "\n")
        info = dict(spec, hash=spec_hash(spec), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        # spec.json is written last: its presence (with versions.json) marks a complete environment.
        (tmp / "spec.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        os.rename(tmp, target)
    except BaseException:
        _remove_tree(tmp)
        raise


def _retarget_scripts(tmp: Path, target: Path) -> None:
    """A venv's scripts name its folder; rewrite them for the folder it is renamed to."""
    old, new = str(tmp).encode(), str(target).encode()
    for f in (tmp / "bin").iterdir():
        if f.is_symlink() or not f.is_file():
            continue
        data = f.read_bytes()
        if old in data:
            f.write_bytes(data.replace(old, new))
    cfg = tmp / "pyvenv.cfg"
    if cfg.exists():
        cfg.write_bytes(cfg.read_bytes().replace(old, new))


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        hint = ""
        if any(
            s in (proc.stderr or "")
            for s in (
                "NewConnectionError",
                "Could not find a version",
                "No matching distribution",
                "Temporary failure in name",
            )
        ):
            hint = " (is the package index reachable? once installed, the toolchain works offline)"
        raise ToolchainError(f"{what} failed: {tail[0]}{hint}")
    return proc.stdout


def _pip_check(env: Environment) -> bool:
    return subprocess.run([str(env.python), "-m", "pip", "check", "-q"], capture_output=True).returncode == 0


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_tree(d: Path) -> None:
    if d.exists() or d.is_symlink():
        # rename first so a half-deleted folder is never mistaken for an environment
        trash = d.with_name(f".{d.name}.trash-{os.getpid()}")
        os.rename(d, trash)
        shutil.rmtree(trash, ignore_errors=True)

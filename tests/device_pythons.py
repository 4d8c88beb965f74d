"""The Python interpreters devices ship, as found on this machine (pyenv's versions folder), and
cached virtual environments holding one device runtime, for tests that run generated loaders the
way a device would. Plain functions; the fixtures built on them are in conftest.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def installed_pythons() -> dict[str, str]:
    """{"3.7": ".../3.7.16/bin/python", ...}: the newest installed patch release of each CPython
    minor version pyenv holds (dev builds and other implementations are ignored)."""
    found: dict[str, tuple[tuple[int, ...], str]] = {}
    if not PYENV_VERSIONS.is_dir():
        return {}
    for entry in PYENV_VERSIONS.iterdir():
        match = re.fullmatch(r"(3\.\d+)\.(\d+)", entry.name)
        python = entry / "bin" / "python"
        if match and python.is_file():
            minor, key = match.group(1), _key(entry.name)
            if minor not in found or key > found[minor][0]:
                found[minor] = (key, str(python))
    return {minor: path for minor, (_, path) in sorted(found.items(), key=lambda item: _key(item[0]))}


def interpreter(minor: str) -> str | None:
    return installed_pythons().get(minor)


def pythons_from(minimum: str) -> list[tuple[str, str]]:
    """[(minor version, interpreter)] for every installed Python at or above `minimum`."""
    return [(minor, path) for minor, path in installed_pythons().items() if _key(minor) >= _key(minimum)]


def oldest_device_python(runtime: str) -> str:
    """The oldest Python any built-in device of this runtime ships (its recipes' [devices.*]
    `python`), never below the Python the loaders are written for; devices without Python (an
    iPhone) verify bundles on a host, so they add nothing."""
    from edgebuild.device_platform import LOADER_MIN_PYTHON, NONE
    from edgebuild.recipes import load_recipe, recipe_files

    versions = [LOADER_MIN_PYTHON]
    oldest = None
    for name in recipe_files(None):
        recipe = load_recipe(name)
        if recipe.runtime != runtime:
            continue
        for profile in recipe.devices.values():
            python = profile.get("python")
            if python and python != NONE and (oldest is None or _key(python) < _key(oldest)):
                oldest = python
    if oldest is not None:
        versions.append(oldest)
    return max(versions, key=_key)


def cached_venv(name: str, python: str, requirements: list[str]) -> tuple[Path | None, str]:
    """A virtual environment of `python` holding `requirements`, created once and kept under
    $EDGEBUILD_HOME or ~/.cache/edgebuild, in test-venvs/<name>/, so later runs and CI reuse it.
    Built in a temporary sibling folder and renamed into place when complete, so an interrupted
    creation leaves nothing that looks ready. Returns (folder, "") or (None, why it failed)."""
    home = Path(os.environ.get("EDGEBUILD_HOME") or Path.home() / ".cache" / "edgebuild")
    final = home / "test-venvs" / name
    if (final / "ready").is_file():
        return final, ""
    final.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))
    try:
        subprocess.run([python, "-m", "venv", str(building)], check=True, capture_output=True, timeout=300)
        done = subprocess.run(
            [
                str(building / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--only-binary",
                ":all:",
                *requirements,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return (
                None,
                f"pip could not install {' '.join(requirements)}: {lines[-1] if lines else 'no output'}",
            )
        (building / "ready").write_text(" ".join(requirements) + "\n")
        try:
            os.rename(building, final)
        except OSError:  # another run finished first: use its environment
            if not (final / "ready").is_file():
                raise
        return final, ""
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"cannot create the {name} environment: {exc}"
    finally:
        shutil.rmtree(building, ignore_errors=True)

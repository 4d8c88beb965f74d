"""The platform a device runs, from the platform keys of its profile (`[devices.*]` in
recipes/*.toml): OS and release, the oldest Python it ships, its OpenSSL, and the runtime package
(and version) the bundle loader uses there. Checked when a recipe is read; summarised into each
bundle's manifest (`requirements`) and README, so a device owner knows what the loader needs."""

from __future__ import annotations

import re

# Every generated loader.py runs on this Python and newer (the Coral Dev Board's Mendel 5.3 ships
# 3.7; tests/test_loader_pythons.py runs each loader under every such interpreter it finds).
LOADER_MIN_PYTHON = "3.7"
NONE = "none"  # python/openssl of a device that has neither (an iPhone runs the Swift snippet)

REQUIRED_KEYS = ("os", "python", "openssl", "runtime_package")
PLATFORM_KEYS = REQUIRED_KEYS + ("runtime_version",)

_PYTHON = re.compile(r"^3\.\d{1,2}$")
_OPENSSL = re.compile(r"^(\d+\.\d+(\.\d+[a-z]?)?|libressl \d+\.\d+(\.\d+)?)$")
_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")


def platform_problem(profile: dict) -> tuple[str, str] | None:
    """(key, message) for the first platform key of a device profile that is wrong, or None.
    A profile names either none of the platform keys (a project's own quick profile) or all of
    REQUIRED_KEYS; runtime_version is optional."""
    present = [key for key in PLATFORM_KEYS if key in profile]
    if not present:
        return None
    for key in present:
        if not isinstance(profile[key], str) or not profile[key].strip():
            return key, "must be a non-empty string"
    missing = [key for key in REQUIRED_KEYS if key not in profile]
    if missing:
        return missing[0], (
            f"missing: a device profile that names its platform needs "
            f"{', '.join(REQUIRED_KEYS)} (it has {', '.join(present)})"
        )
    python = profile["python"]
    if python != NONE and not _PYTHON.match(python):
        return "python", (
            f"'{python}' is not a Python version such as \"3.8\" "
            f'(or "{NONE}" for a device that runs no Python)'
        )
    openssl = profile["openssl"]
    if openssl != NONE and not _OPENSSL.match(openssl):
        return "openssl", (
            f'\'{openssl}\' is not an OpenSSL version such as "1.1.1" or "3.0" '
            f'(or "libressl 3.3", or "{NONE}")'
        )
    version = profile.get("runtime_version")
    if version is not None and not _VERSION.match(version):
        return "runtime_version", f'\'{version}\' is not a version such as "2.11" or "10.3"'
    return None


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def bundle_requirements(profile: dict) -> dict:
    """What a bundle's loader needs on this device, for the manifest and README: the Python it
    needs (the device's oldest Python, never below what the loader is written for), the runtime
    package, and the platform facts the profile states."""
    python = profile.get("python")
    floor = LOADER_MIN_PYTHON
    if python and python != NONE and _PYTHON.match(python) and _version_key(python) > _version_key(floor):
        floor = python
    requirements = {"python": f">={floor}"}
    for key in PLATFORM_KEYS:
        if key in profile:
            requirements["device_python" if key == "python" else key] = profile[key]
    return requirements

"""Action keys: what decides whether a node's cached result can be reused.

key = sha256 of (step name, step version, parameters, toolchain versions, content digest of every
input). No paths, no environment variables, no timestamps: the same work on another machine or in
another checkout gets the same key, and a tool upgrade or a changed byte gets a new one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from edgebuild.fsutil import atomic_write_json
from edgebuild.graph import Node
from edgebuild.hashing import canonical_json, sha256_bytes

ABSENT = "absent"


class _InstalledVersions:
    """Versions of installed distributions, remembered in a small file keyed by the modification
    times of sys.path folders (installing, upgrading or removing a package changes them), because
    importlib.metadata alone costs more than a whole no-op build should."""

    def __init__(self) -> None:
        self.file: Path | None = None
        # only package folders: the script's folder or the cwd at sys.path[0] change from call to call
        self._fingerprint = [
            [p, os.stat(p).st_mtime_ns]
            for p in sys.path
            if ("site-packages" in p or "dist-packages" in p) and os.path.isdir(p)
        ]
        self._versions: dict[str, str] = {}
        self._dirty = False

    def use_file(self, file: Path) -> None:
        self.file = file
        try:
            data = json.loads(file.read_text())
        except (FileNotFoundError, ValueError):
            return
        if data.get("fingerprint") == self._fingerprint:
            self._versions = data.get("versions", {})

    def get(self, name: str) -> str:
        if name not in self._versions:
            from importlib import metadata

            try:
                self._versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                self._versions[name] = ABSENT
            self._dirty = True
        return self._versions[name]

    def save(self) -> None:
        if self._dirty and self.file is not None:
            atomic_write_json(self.file, {"fingerprint": self._fingerprint, "versions": self._versions})
            self._dirty = False


INSTALLED = _InstalledVersions()


def distribution_version(name: str) -> str:
    return INSTALLED.get(name)


@lru_cache(maxsize=None)
def tool_version(tool: str) -> str:
    """First line of `tool --version`, or 'absent' when the executable is not on PATH."""
    exe = shutil.which(tool)
    if exe is None:
        return ABSENT
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


class ToolchainMissing(Exception):
    """The node's toolchain environment has not been created yet (so its versions are unknown)."""


def toolchain_versions(node: Node) -> dict[str, str]:
    cls = node.step_cls
    if node.toolchain is None:
        versions = {dist: distribution_version(dist) for dist in cls.uses}
        versions["python"] = "%d.%d" % sys.version_info[:2]
    else:
        from edgebuild.toolchain import lookup

        env = lookup(node.toolchain)
        if env is None:
            raise ToolchainMissing(node.toolchain.get("name", "?"))
        versions = {dist: env.versions.get(dist, ABSENT) for dist in cls.uses}
        versions["python"] = env.versions.get("python", "?")
        versions["toolchain"] = node.toolchain.get("name", "?")
    for tool in cls.tools:
        versions[f"tool:{tool}"] = tool_version(tool)
    return versions


def key_parts(node: Node, input_digests: dict[str, str], versions: dict[str, str]) -> dict:
    return {
        "step": node.step,
        "version": node.step_cls.version,
        "params": node.params,
        "toolchain": versions,
        "inputs": dict(sorted(input_digests.items())),
    }


def action_key(parts: dict) -> str:
    return sha256_bytes(canonical_json(parts))

"""Action keys: what decides whether a node's cached result can be reused.

key = sha256 of (step name, step version, parameters, toolchain versions, content digest of every
input). No paths, no environment variables, no timestamps: the same work on another machine or in
another checkout gets the same key, and a tool upgrade or a changed byte gets a new one.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from functools import lru_cache
from importlib import metadata

from edgebuild.graph import Node
from edgebuild.hashing import canonical_json, sha256_bytes

ABSENT = "absent"


@lru_cache(maxsize=None)
def distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ABSENT


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
    return {"step": node.step, "version": node.step_cls.version, "params": node.params,
            "toolchain": versions, "inputs": dict(sorted(input_digests.items()))}


def action_key(parts: dict) -> str:
    return sha256_bytes(canonical_json(parts))

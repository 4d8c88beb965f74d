"""A third-party edgebuild plugin as Python sees an installed one: a module and a .dist-info folder
with its entry points, in a folder put on PYTHONPATH (used by tests and benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path


def write_plugin_package(
    base: Path, module: str, source: str, entry_points: dict[str, dict[str, str]]
) -> None:
    """base/<module>.py holding `source`, and base/<module>-0.1.dist-info declaring
    entry_points ({group: {name: "module:attribute"}})."""
    (base / f"{module}.py").write_text(source)
    info = base / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "\n".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in names.items())
            for group, names in entry_points.items()
        )
    )


def env_with_plugins(base: Path) -> dict[str, str]:
    """This environment with `base` first on PYTHONPATH, without a remote cache or signing key
    that would leak in from the caller's shell."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("EDGEBUILD_REMOTE_CACHE", "EDGEBUILD_SIGNING_KEY")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(base), env.get("PYTHONPATH")]))
    return env

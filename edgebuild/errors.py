"""Errors the CLI turns into one line on stderr and an exit code (DESIGN.md: 2 usage, 1 failure)."""

from __future__ import annotations

from pathlib import Path


class EdgebuildError(Exception):
    exit_code = 1


class ConfigError(EdgebuildError):
    """A mistake in targets.toml, a recipe, or the command line: exit 2, one line, no traceback."""

    exit_code = 2

    def __init__(
        self, message: str, file: Path | str | None = None, key: str | None = None, line: int | None = None
    ) -> None:
        where = ""
        if file is not None:
            where = str(file)
            if line is not None:
                where += f":{line}"
            where += ": "
        if key:
            where += f"{key}: "
        super().__init__(where + message)
        self.file, self.key, self.line = file, key, line


class BuildFailed(EdgebuildError):
    """A step, gate or verification failed: exit 1."""


class StepFailed(Exception):
    """The step could not produce its outputs for a reason the user can act on (unsupported op,
    gate missed, bad calibration data). The message is shown as is, without a traceback.

    Defined here, below the steps, so that modules the steps use (edgebuild.evaldata: the npz
    loader) raise it without importing edgebuild.steps; edgebuild.steps.base re-exports it."""

"""Recipe files (recipes/*.toml) -> Recipe objects. Format: recipes/README.md.

Built-in recipes ship inside the package (edgebuild/recipes in a wheel, ../recipes in a checkout);
a project's own recipes/ folder adds recipes or replaces built-in ones of the same name.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.errors import ConfigError
from edgebuild.project import did_you_mean
from edgebuild.tomlpos import key_lines, line_of

RECIPE_KEYS = {"recipe", "parameters", "choices", "devices", "steps", "toolchain"}
HEADER_KEYS = {"name", "description", "runtime", "default_device"}
# `[recipe] toolchain` was accepted but never read (the [toolchain] table and each step's `toolchain`
# decide where a step runs: graph.py); files that still set it get a warning, not an error.
DEPRECATED_HEADER_KEYS = {"toolchain"}
_warned: set[tuple[str, str]] = set()
STEP_KEYS = {"id", "step", "inputs", "params", "when", "artifact", "toolchain", "after"}
MODEL_REFS = {"model.source", "model.calibration", "model.evaluation"}


def builtin_recipe_dir() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "recipes"
    return packaged if packaged.is_dir() else here.parent / "recipes"


@dataclass(frozen=True)
class RecipeStep:
    id: str
    step: str
    inputs: dict[str, str]
    params: dict[str, Any]
    when: dict[str, list]
    artifact: dict[str, str]  # output name -> file name template under build/<target>/
    toolchain: str | None  # "default" runs in edgebuild's own environment
    after: tuple[str, ...] = ()  # steps that must succeed first without feeding it (e.g. a coverage gate)


@dataclass(frozen=True)
class Recipe:
    name: str
    file: Path
    description: str
    runtime: str
    default_device: str
    parameters: dict[str, Any]
    choices: dict[str, list]
    devices: dict[str, dict]
    steps: list[RecipeStep]
    toolchain: dict | None  # [toolchain] spec, None = edgebuild's own environment


def recipe_files(project_root: Path | None) -> dict[str, Path]:
    files = {p.stem: p for p in sorted(builtin_recipe_dir().glob("*.toml"))}
    if project_root is not None and (project_root / "recipes").is_dir():
        files.update({p.stem: p for p in sorted((project_root / "recipes").glob("*.toml"))})
    return files


def load_recipe(name: str, project_root: Path | None = None) -> Recipe:
    files = recipe_files(project_root)
    if name not in files:
        raise LookupError(name)
    return parse_recipe(files[name])


def parse_recipe(file: Path) -> Recipe:
    text = file.read_text(encoding="utf-8")
    lines = key_lines(text)

    def fail(message: str, key: str | None = None) -> ConfigError:
        return ConfigError(message, file, key, line_of(lines, key) if key else None)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"invalid TOML: {exc}") from None
    for key in data:
        if key not in RECIPE_KEYS:
            raise fail(f"unknown table{did_you_mean(key, RECIPE_KEYS)}", key)
    header = data.get("recipe")
    if not isinstance(header, dict):
        raise fail("missing [recipe] table")
    for key in header:
        if key in DEPRECATED_HEADER_KEYS:
            _warn_deprecated(file, key)
        elif key not in HEADER_KEYS:
            raise fail(f"unknown key{did_you_mean(key, HEADER_KEYS)}", f"recipe.{key}")
    name = header.get("name")
    if name != file.stem:
        raise fail(f"recipe name '{name}' must equal the file name '{file.stem}'", "recipe.name")
    runtime = header.get("runtime", name)
    _check_runtime(runtime, fail)
    parameters = data.get("parameters", {})
    choices = data.get("choices", {})
    for key, allowed in choices.items():
        if key not in parameters:
            raise fail(f"choices for unknown parameter '{key}'", f"choices.{key}")
        if not isinstance(allowed, list):
            raise fail("must be a list of allowed values", f"choices.{key}")
    devices = data.get("devices", {})
    _check_device_platforms(devices, fail)
    default_device = header.get("default_device", "")
    if default_device and devices and default_device not in devices:
        raise fail(f"default device '{default_device}' is not among [devices.*]", "recipe.default_device")

    steps: list[RecipeStep] = []
    seen: set[str] = set()
    raw_steps = data.get("steps", [])
    if not raw_steps:
        raise fail("a recipe needs at least one [[steps]] entry")
    for index, raw in enumerate(raw_steps):
        where = f"steps[{index}]"
        for key in raw:
            if key not in STEP_KEYS:
                raise fail(f"unknown key '{key}' in {where}{did_you_mean(key, STEP_KEYS)}", "steps")
        for key in ("id", "step"):
            if not isinstance(raw.get(key), str):
                raise fail(f"{where} needs a string '{key}'", "steps")
        if raw["id"] in seen:
            raise fail(f"duplicate step id '{raw['id']}'", "steps")
        seen.add(raw["id"])
        artifact = raw.get("artifact", {})
        when = {k: v if isinstance(v, list) else [v] for k, v in raw.get("when", {}).items()}
        for key in when:
            if key not in parameters:
                raise fail(f"step '{raw['id']}': `when` names unknown parameter '{key}'", "steps")
        steps.append(
            RecipeStep(
                id=raw["id"],
                step=raw["step"],
                inputs=dict(raw.get("inputs", {})),
                params=dict(raw.get("params", {})),
                when=when,
                artifact=artifact if isinstance(artifact, dict) else {"": artifact},
                toolchain=raw.get("toolchain"),
                after=tuple(raw.get("after", ())),
            )
        )
    _check_step_kinds(steps, fail)
    toolchain = data.get("toolchain")
    return Recipe(
        name=name,
        file=file,
        description=header.get("description", ""),
        runtime=runtime,
        default_device=default_device,
        parameters=parameters,
        choices=choices,
        devices=devices,
        steps=steps,
        toolchain=toolchain,
    )


def _warn_deprecated(file: Path, key: str) -> None:
    """One line per file and key per process (recipes are parsed more than once per command)."""
    if (str(file), key) not in _warned:
        _warned.add((str(file), key))
        print(
            f"edgebuild: warning: {file}: [recipe] {key} is deprecated and ignored (the [toolchain] table "
            f"and each step's `toolchain` decide where steps run); remove it",
            file=sys.stderr,
        )


def _check_runtime(runtime, fail) -> None:
    """recipe.runtime names a runtime of edgebuild.runtimes (a built-in or an installed plugin)."""
    from edgebuild.runtimes import UnknownRuntime, get_runtime

    try:
        get_runtime(runtime)
    except UnknownRuntime as exc:
        raise fail(str(exc), "recipe.runtime") from None


def _check_device_platforms(devices: dict, fail) -> None:
    """Each device profile is a table whose platform keys (os, python, openssl, runtime_package,
    runtime_version: edgebuild/device_platform.py) are well formed."""
    from edgebuild.device_platform import platform_problem

    if not isinstance(devices, dict):
        raise fail("must be a table of device profiles ([devices.NAME])", "devices")
    for name, profile in devices.items():
        if not isinstance(profile, dict):
            raise fail("a device profile must be a table", f"devices.{name}")
        problem = platform_problem(profile)
        if problem:
            raise fail(problem[1], f"devices.{name}.{problem[0]}")


def _check_step_kinds(steps: list[RecipeStep], fail) -> None:
    """Every step kind exists and every input refers to a model file or another step's output."""
    from edgebuild.steps import UnknownStep, get_step

    kinds = {}
    for s in steps:
        try:
            kinds[s.id] = get_step(s.step)
        except UnknownStep:
            raise fail(f"step '{s.id}' uses unknown step kind '{s.step}'", "steps") from None
    for s in steps:
        declared = {role.rstrip("?") for role in kinds[s.id].inputs}
        for role, ref in s.inputs.items():
            if role not in declared:
                raise fail(
                    f"step '{s.id}': {s.step} has no input '{role}' (inputs: {', '.join(sorted(declared))})",
                    "steps",
                )
            if ref in MODEL_REFS:
                continue
            upstream, _, output = ref.partition(".")
            if upstream not in kinds:
                raise fail(
                    f"step '{s.id}' input '{role}' refers to unknown step '{upstream}'"
                    f"{did_you_mean(upstream, kinds)}",
                    "steps",
                )
            if output not in kinds[upstream].outputs:
                raise fail(
                    f"step '{s.id}' input '{role}': step '{upstream}' has no output '{output}' "
                    f"(outputs: {', '.join(kinds[upstream].outputs)})",
                    "steps",
                )
        for upstream in s.after:
            if upstream not in kinds:
                raise fail(
                    f"step '{s.id}': `after` names unknown step '{upstream}'{did_you_mean(upstream, kinds)}",
                    "steps",
                )
        for output in s.artifact:
            if output and output not in kinds[s.id].outputs:
                raise fail(f"step '{s.id}': artifact names unknown output '{output}'", "steps")

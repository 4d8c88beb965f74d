"""A target checked against its recipe: parameters merged and validated, device resolved, steps chosen."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgebuild.errors import ConfigError
from edgebuild.project import Model, Project, Target, did_you_mean
from edgebuild.recipes import Recipe, RecipeStep, load_recipe, recipe_files

_REF = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")


@dataclass(frozen=True)
class ResolvedTarget:
    target: Target
    model: Model
    recipe: Recipe
    device: str
    device_profile: dict
    params: dict[str, Any]  # recipe defaults overridden by the target
    steps: list[RecipeStep]  # the recipe's steps whose `when` matches

    @property
    def name(self) -> str:
        return self.target.name

    def references(self) -> dict[str, Any]:
        refs = dict(self.params)
        refs.update(
            model=self.model.name,
            target=self.target.name,
            device=self.device,
            input_shapes=self.model.input_shapes,
            input_range=self.model.input_range,
        )
        refs.update({f"device.{k}": v for k, v in self.device_profile.items()})
        return refs

    def expand(self, value: Any, where: str) -> Any:
        """Substitute "{name}" references in a recipe value (recursively in lists and tables)."""
        if isinstance(value, dict):
            return {k: self.expand(v, where) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, where) for v in value]
        if not isinstance(value, str):
            return value
        refs = self.references()
        whole = _REF.fullmatch(value)
        if whole:
            return self._lookup(refs, whole.group(1), where)
        return _REF.sub(lambda m: str(self._lookup(refs, m.group(1), where)), value)

    def _lookup(self, refs: dict, name: str, where: str) -> Any:
        if name not in refs:
            raise ConfigError(
                f"{where} refers to '{{{name}}}', which is not a parameter of recipe "
                f"'{self.recipe.name}'{did_you_mean(name, refs)}",
                self.recipe.file,
            )
        return refs[name]


def _same_kind(default: Any, value: Any) -> bool:
    if default == "auto":  # decided by the recipe's steps (e.g. by precision) unless set: any scalar
        return isinstance(value, (bool, int, float, str))
    if isinstance(default, (int, float)) and not isinstance(default, bool) and value is False:
        return True  # a number that can be switched off (int8_min_cosine = false)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    return default is None or isinstance(value, type(default))


def load_recipes_for(project: Project) -> dict[str, Recipe]:
    files = recipe_files(project.root)
    recipes: dict[str, Recipe] = {}
    for target in project.targets.values():
        if target.recipe in recipes:
            continue
        if target.recipe not in files:
            raise project.error(
                f"unknown recipe '{target.recipe}'{did_you_mean(target.recipe, files)}; "
                f"recipes: {', '.join(sorted(files))}",
                f"targets.{target.name}.recipe",
            )
        recipes[target.recipe] = load_recipe(target.recipe, project.root)
    return recipes


def resolve_target(project: Project, target: Target, recipe: Recipe) -> ResolvedTarget:
    key = f"targets.{target.name}"
    params = dict(recipe.parameters)
    for name, value in target.settings.items():
        if name not in recipe.parameters:
            raise project.error(
                f"unknown key for recipe '{recipe.name}'"
                f"{did_you_mean(name, list(recipe.parameters) + ['model', 'recipe', 'device'])}",
                f"{key}.{name}",
            )
        if not _same_kind(recipe.parameters[name], value):
            raise project.error(
                f"must be {type(recipe.parameters[name]).__name__}, got {value!r}", f"{key}.{name}"
            )
        allowed = recipe.choices.get(name)
        if allowed is not None and value not in allowed:
            raise project.error(f"'{value}' is not one of {', '.join(map(str, allowed))}", f"{key}.{name}")
        params[name] = value

    device = target.device or recipe.default_device
    if recipe.devices:
        if not device:
            raise project.error(
                f"recipe '{recipe.name}' needs a device; known devices: {', '.join(sorted(recipe.devices))}",
                key,
            )
        if device not in recipe.devices:
            raise project.error(
                f"unknown device '{device}' for recipe '{recipe.name}'"
                f"{did_you_mean(device, recipe.devices)}; known devices: "
                f"{', '.join(sorted(recipe.devices))}",
                f"{key}.device",
            )
    profile = recipe.devices.get(device, {})

    steps = [s for s in recipe.steps if all(params.get(k) in v for k, v in s.when.items())]
    model = project.models[target.model]
    resolved = ResolvedTarget(
        target=target,
        model=model,
        recipe=recipe,
        device=device or "",
        device_profile=profile,
        params=params,
        steps=steps,
    )
    return resolved


def resolve_all(project: Project, names: list[str] | None = None) -> list[ResolvedTarget]:
    if names:
        for name in names:
            if name not in project.targets:
                raise ConfigError(
                    f"unknown target '{name}'{did_you_mean(name, project.targets)}; targets: "
                    f"{', '.join(sorted(project.targets))}"
                )
    recipes = load_recipes_for(project)
    chosen = names or list(project.targets)
    return [resolve_target(project, project.targets[n], recipes[project.targets[n].recipe]) for n in chosen]

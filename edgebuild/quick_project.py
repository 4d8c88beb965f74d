"""A one-target project made from the command line, for `edgebuild check MODEL.onnx --recipe NAME`:
the quick question "will this model run on that device?" without writing targets.toml.

Its cache and logs live under $EDGEBUILD_HOME/check (not beside the model), so asking leaves no
files in the user's folders. Dynamic input dimensions the user does not fix with --input-shape are
filled as `init` fills them (the model's metadata, else a stated guess)."""

from __future__ import annotations

from pathlib import Path

from edgebuild.errors import ConfigError
from edgebuild.project import Model, Project, Target, did_you_mean, to_name


def quick_project(
    model_arg: str, recipe_name: str | None, device: str | None, shape_args: list[str]
) -> Project:
    from edgebuild.input_shapes import choose_shapes, parse_input_shape
    from edgebuild.recipes import load_recipe, recipe_files
    from edgebuild.toolchain import home as edgebuild_home

    source = Path(model_arg).resolve()
    if not source.exists():
        raise ConfigError(f"model not found: {model_arg}")
    if source.is_file() and source.suffix != ".onnx":
        raise ConfigError(f"{model_arg}: expected an .onnx file or a Hugging Face model folder")
    if source.is_dir() and not (source / "config.json").is_file():
        raise ConfigError(f"{model_arg}: folder has no config.json: not a Hugging Face model folder")
    files = recipe_files(None)  # the built-in recipes: there is no project folder
    if not recipe_name:
        raise ConfigError(f"check {model_arg} needs --recipe NAME (recipes: {', '.join(sorted(files))})")
    if recipe_name not in files:
        raise ConfigError(
            f"--recipe: unknown recipe '{recipe_name}'{did_you_mean(recipe_name, files)}; "
            f"recipes: {', '.join(sorted(files))}"
        )
    recipe = load_recipe(recipe_name)
    if device and recipe.devices and device not in recipe.devices:
        raise ConfigError(
            f"--device: unknown device '{device}' for recipe '{recipe_name}'"
            f"{did_you_mean(device, recipe.devices)}; known devices: {', '.join(sorted(recipe.devices))}"
        )
    if recipe.devices and not (device or recipe.default_device):
        raise ConfigError(
            f"recipe '{recipe_name}' needs --device NAME; known devices: {', '.join(sorted(recipe.devices))}"
        )

    given: dict[str, list[int]] = {}
    for text in shape_args:
        try:
            name, shape = parse_input_shape(text)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        given[name] = shape
    shapes: dict[str, list[int]] = {}
    notes = []
    if source.is_file():
        from edgebuild.onnxinfo import read_onnx

        choices, probe_note = choose_shapes(source, probe=not given, model=read_onnx(source, model_arg))
        chosen = {c.name: c for c in choices}
        for name in given:
            if name not in chosen:
                raise ConfigError(
                    f"--input-shape: the model has no input '{name}'{did_you_mean(name, chosen)}; "
                    f"inputs: {', '.join(chosen)}"
                )
        for name, choice in chosen.items():
            if name in given:
                shapes[name] = given[name]
            elif choice.dynamic:
                shapes[name] = choice.shape
                notes.append(
                    f"input '{name}' {choice.model_shape} checked as {choice.shape} ("
                    + "; ".join(choice.notes)
                    + f"): pass --input-shape {name}="
                    + ",".join(map(str, choice.shape))
                    + " to choose"
                )
        if notes and probe_note:
            notes.append(probe_note)
    elif given:
        raise ConfigError("--input-shape applies to ONNX models, not to a model folder")

    model_name = to_name(source.stem if source.is_file() else source.name)
    target_name = to_name(f"{recipe_name}-{device}" if device else recipe_name)
    model = Model(
        name=model_name, source=source, calibration=None, evaluation=None, input_shapes=shapes, info={}
    )
    target = Target(name=target_name, model=model_name, recipe=recipe_name, device=device, settings={})
    home = edgebuild_home() / "check"
    home.mkdir(parents=True, exist_ok=True)
    return Project(
        root=home,
        file=source,
        name="check",
        version="0.0.0",
        info={"shape_notes": "\n".join(notes)},
        models={model_name: model},
        targets={target_name: target},
    )

"""targets.toml -> typed, validated Project. Every mistake is a ConfigError naming file, key and line.

Only the structure is checked here; whether a target's parameters and device fit its recipe is
checked in `targets.py`, once the recipes are loaded.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebuild.errors import ConfigError
from edgebuild.tomlpos import key_lines, line_of

PROJECT_FILE = "targets.toml"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

TOP_LEVEL = {"project", "models", "targets", "bundle", "cache"}
PROJECT_KEYS = {"name", "version", "description", "author", "license"}
MODEL_KEYS = {
    "source",
    "calibration",
    "evaluation",
    "input_shapes",
    "input_range",
    "description",
    "license",
    "author",
}
TARGET_KEYS = {"model", "recipe", "device", "description", "split"}  # plus the recipe's parameters
BUNDLE_KEYS = {"signing_key", "out_dir", "index_expiry_days"}
CACHE_KEYS = {"remote", "dir"}


def to_name(text: str, default: str = "model") -> str:
    """`text` made into a valid project/model/target name (lower case, '-' for anything else)."""
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-._") or default


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class Model:
    name: str
    source: Path  # absolute; an .onnx file or a Hugging Face model folder
    calibration: Path | None
    evaluation: Path | None
    input_shapes: dict[str, list[int]]
    info: dict[str, str]  # description, license, author
    input_range: dict[str, list[float]] = field(
        default_factory=dict
    )  # input name -> [low, high] of its values

    @property
    def is_folder(self) -> bool:
        return self.source.is_dir()


@dataclass(frozen=True)
class Target:
    name: str
    model: str
    recipe: str
    device: str | None
    settings: dict[str, Any]  # every other key: recipe parameters and policies
    description: str | None = None
    split: Any = None  # SplitConfig of a [targets.NAME.split] table (edgebuild/split/config.py)


@dataclass
class Project:
    root: Path
    file: Path
    name: str
    version: str
    info: dict[str, str]
    models: dict[str, Model]
    targets: dict[str, Target]
    signing_key: str | None = None
    bundles_dir: Path | None = None
    index_expiry_days: int = 90  # bundles/index.json expires this long after it is signed
    remote_cache: str | None = None
    lines: dict[str, int] = field(default_factory=dict, repr=False)

    def error(self, message: str, key: str | None = None) -> ConfigError:
        """A ConfigError pointing at `key` (dotted) in targets.toml."""
        return ConfigError(message, self.file, key, line_of(self.lines, key) if key else None)

    @property
    def state_dir(self) -> Path:
        return self.root / ".edgebuild"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"


class _Reader:
    """Typed access to the parsed TOML that reports mistakes with their position."""

    def __init__(self, file: Path, lines: dict[str, int]) -> None:
        self.file, self.lines = file, lines

    def fail(self, message: str, key: str | None = None) -> ConfigError:
        return ConfigError(message, self.file, key, line_of(self.lines, key) if key else None)

    def table(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(f"must be a table, not {type(value).__name__}", key)
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"must be a non-empty string, got {value!r}", key)
        return value

    def only(self, table: dict, allowed: set[str], key: str, what: str) -> None:
        for name in table:
            if name not in allowed:
                raise self.fail(f"unknown key in {what}{did_you_mean(name, allowed)}", f"{key}.{name}")

    def name(self, value: str, key: str) -> str:
        if not NAME.match(value):
            raise self.fail(
                f"'{value}' is not a valid name: use lower-case letters, digits, '-', '_', '.'", key
            )
        return value

    def existing_path(self, root: Path, value: Any, key: str) -> Path:
        path = (root / self.string(value, key)).resolve()
        if not path.exists():
            raise self.fail(f"file not found: {value}", key)
        return path


def load_project(project_dir: Path | str = ".") -> Project:
    root = Path(project_dir).resolve()
    file = root / PROJECT_FILE
    if not root.is_dir():
        raise ConfigError(f"project folder not found: {project_dir}")
    if not file.is_file():
        raise ConfigError(f"no {PROJECT_FILE} in {root} (use -C DIR to point at a project)")
    return parse_project(root, file, file.read_text(encoding="utf-8"))


def parse_project(root: Path, file: Path, text: str) -> Project:
    """A project from targets.toml text whose relative paths are relative to `root` (`init` checks
    the file it is about to write this way)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        raise ConfigError(
            f"invalid TOML: {str(exc).split(' (at line')[0]}",
            file,
            line=int(match.group(1)) if match else None,
        ) from None
    lines = key_lines(text)
    r = _Reader(file, lines)
    r.only(data, TOP_LEVEL, "", "targets.toml")

    meta = r.table(data.get("project", {}), "project")
    r.only(meta, PROJECT_KEYS, "project", "[project]")
    if "name" not in meta:
        raise r.fail("missing key 'name'", "project")
    name = r.name(r.string(meta["name"], "project.name"), "project.name")
    version = r.string(meta.get("version", "0.1.0"), "project.version")
    if not SEMVER.match(version):
        raise r.fail(
            f"'{version}' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)", "project.version"
        )
    info = {k: r.string(v, f"project.{k}") for k, v in meta.items() if k not in ("name", "version")}

    models = {
        m: _load_model(r, root, m, spec) for m, spec in r.table(data.get("models", {}), "models").items()
    }
    if not models:
        raise r.fail("no models defined: add a [models.NAME] table with a `source`")

    targets_table = r.table(data.get("targets", {}), "targets")
    if not targets_table:
        raise r.fail("no targets defined: add a [targets.NAME] table with `model` and `recipe`")
    targets: dict[str, Target] = {}
    seen_folded: dict[str, str] = {}
    for t, spec in targets_table.items():
        key = f"targets.{t}"
        r.name(t, key)
        if t.lower() in seen_folded:  # build/<target> folders would collide on case-insensitive disks
            raise r.fail(f"duplicate target name (same as '{seen_folded[t.lower()]}' ignoring case)", key)
        seen_folded[t.lower()] = t
        targets[t] = _load_target(r, t, spec, models)

    bundle = r.table(data.get("bundle", {}), "bundle")
    r.only(bundle, BUNDLE_KEYS, "bundle", "[bundle]")
    signing_key = r.string(bundle["signing_key"], "bundle.signing_key") if "signing_key" in bundle else None
    bundles_dir = root / r.string(bundle.get("out_dir", "bundles"), "bundle.out_dir")
    expiry_days = bundle.get("index_expiry_days", 90)
    if isinstance(expiry_days, bool) or not isinstance(expiry_days, int) or not 1 <= expiry_days <= 3650:
        raise r.fail(
            f"must be a whole number of days from 1 to 3650, got {expiry_days!r}", "bundle.index_expiry_days"
        )
    cache = r.table(data.get("cache", {}), "cache")
    r.only(cache, CACHE_KEYS, "cache", "[cache]")
    remote = r.string(cache["remote"], "cache.remote") if "remote" in cache else None

    return Project(
        root=root,
        file=file,
        name=name,
        version=version,
        info=info,
        models=models,
        targets=targets,
        signing_key=signing_key,
        bundles_dir=bundles_dir,
        index_expiry_days=expiry_days,
        remote_cache=remote,
        lines=lines,
    )


def _load_model(r: _Reader, root: Path, name: str, spec: Any) -> Model:
    key = f"models.{name}"
    r.name(name, key)
    spec = r.table(spec, key)
    r.only(spec, MODEL_KEYS, key, f"[{key}]")
    if "source" not in spec:
        raise r.fail("missing key 'source' (an .onnx file or a Hugging Face model folder)", key)
    source = r.existing_path(root, spec["source"], f"{key}.source")
    if source.is_file() and source.suffix != ".onnx":
        raise r.fail(f"source must be an .onnx file or a model folder, not '{source.name}'", f"{key}.source")
    if source.is_dir() and not (source / "config.json").is_file():
        raise r.fail(
            f"folder {spec['source']} has no config.json: not a Hugging Face model folder", f"{key}.source"
        )
    data_files = {}
    for role in ("calibration", "evaluation"):
        if role in spec:
            path = r.existing_path(root, spec[role], f"{key}.{role}")
            if path.suffix != ".npz":
                raise r.fail(
                    f"must be an .npz file (one array per input name, batch first), not '{path.name}'",
                    f"{key}.{role}",
                )
            data_files[role] = path
    shapes = r.table(spec.get("input_shapes", {}), f"{key}.input_shapes")
    for input_name, shape in shapes.items():
        if not (
            isinstance(shape, list)
            and shape
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
        ):
            raise r.fail(
                f"must be a list of positive integers, got {shape!r}", f"{key}.input_shapes.{input_name}"
            )
    info = {k: r.string(spec[k], f"{key}.{k}") for k in ("description", "license", "author") if k in spec}
    return Model(
        name=name,
        source=source,
        calibration=data_files.get("calibration"),
        evaluation=data_files.get("evaluation"),
        input_shapes=shapes,
        info=info,
        input_range=_input_range(r, spec.get("input_range"), f"{key}.input_range"),
    )


def _input_range(r: _Reader, value: Any, key: str) -> dict[str, list[float]]:
    """`input_range = [0, 255]` (every input) or `{ x = [0.0, 1.0] }`: the values generated inputs
    take when the model has no data to verify with. "*" stands for every input."""
    if value is None:
        return {}
    table = value if isinstance(value, dict) else {"*": value}
    for name, pair in table.items():
        where = key if name == "*" else f"{key}.{name}"
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
            and pair[0] < pair[1]
        ):
            raise r.fail(f"must be [low, high] with low < high, got {pair!r}", where)
    return {name: [float(v) for v in pair] for name, pair in table.items()}


def _load_target(r: _Reader, name: str, spec: Any, models: dict[str, Model]) -> Target:
    key = f"targets.{name}"
    spec = r.table(spec, key)
    for required in ("model", "recipe"):
        if required not in spec:
            raise r.fail(f"missing key '{required}'", key)
    model = r.string(spec["model"], f"{key}.model")
    if model not in models:
        raise r.fail(
            f"unknown model '{model}'{did_you_mean(model, models)}; models: {', '.join(sorted(models))}",
            f"{key}.model",
        )
    recipe = r.string(spec["recipe"], f"{key}.recipe")
    device = r.string(spec["device"], f"{key}.device") if "device" in spec else None
    settings = {k: v for k, v in spec.items() if k not in TARGET_KEYS}
    description = r.string(spec["description"], f"{key}.description") if "description" in spec else None
    split = None
    if "split" in spec:  # split inference: validated here so every command sees mistakes
        from edgebuild.split.config import parse_split

        split = parse_split(spec["split"], f"{key}.split", r.file.parent, r.fail)
    return Target(
        name=name,
        model=model,
        recipe=recipe,
        device=device,
        settings=settings,
        description=description,
        split=split,
    )

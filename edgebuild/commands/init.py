"""`edgebuild init MODEL [MODEL ...] [--device NAME ...]`: a commented targets.toml written from the
models themselves, so that a model is all a user needs to start.

Per model: its inputs (names, dtypes, shapes) read from the file, dynamic dimensions filled from
its metadata or a stated guess; the data keys, commented out, with the npz format they need. Then
one candidate target per recipe (or per `--device`), checked exactly as `edgebuild check` checks
them (the same cached steps): those whose check passes are written as targets, the others
commented out with the reason. An existing targets.toml is never overwritten (exit 2)."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from edgebuild import cli_options as opt
from edgebuild.errors import ConfigError
from edgebuild.project import PROJECT_FILE, parse_project, to_name

# One target per recipe when no device is named: (recipe, name suffix, device, settings, comment)
ONNX_TARGETS = [
    (
        "onnxruntime",
        "cpu",
        None,
        {"precision": "fp32"},
        'precision: fp32 | fp16 | int8 (int8 needs calibration data, or int8_mode = "dynamic")',
    ),
    ("tflite", "tflite", None, {"precision": "fp32"}, "precision: fp32 | fp16 | int8"),
    ("edgetpu", "coral", "coral-usb", {}, "full int8: needs calibration data"),
    ("coreml", "iphone", None, {"precision": "fp16"}, "precision: fp16 | fp32"),
    (
        "tensorrt",
        "jetson-orin-nano",
        "jetson-orin-nano",
        {"precision": "fp16"},
        "device: any of the recipe's [devices.*]; the engine is built on the device class",
    ),
]
FOLDER_TARGETS = [
    ("gguf", "q4", None, {"quantization": "Q4_K_M"}, "quantization: F16 | Q8_0 | Q6_K | Q4_K_M | ...")
]


@dataclass
class ModelInfo:
    name: str
    source: str  # as written into targets.toml
    path: Path
    folder: bool
    lines: list[str] = field(default_factory=list)  # comments and keys of its [models.*] table
    input_shapes: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Candidate:
    name: str
    model: str
    recipe: str
    device: str | None
    settings: dict
    comment: str


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive (Windows)
        return path.as_posix()


def describe_model(arg: str, root: Path, taken: set[str]) -> ModelInfo:
    path = Path(arg).resolve()
    if not path.exists() and (root / arg).exists():  # given relative to the project folder (-C DIR)
        path = (root / arg).resolve()
    if not path.exists():
        raise ConfigError(f"model not found: {arg}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{arg}: folder has no config.json: not a Hugging Face model folder")
    elif path.suffix != ".onnx":
        raise ConfigError(f"{arg}: expected an .onnx file or a Hugging Face model folder")
    name = base = to_name(path.stem if path.is_file() else path.name)
    count = 2
    while name in taken:
        name, count = f"{base}-{count}", count + 1
    taken.add(name)
    info = ModelInfo(name=name, source=_relative(path, root), path=path, folder=path.is_dir())
    if info.folder:
        _describe_folder(info)
    else:
        _describe_onnx(info)
    return info


def _describe_folder(info: ModelInfo) -> None:
    try:
        config = json.loads((info.path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{info.path / 'config.json'}: cannot be read as JSON ({exc})") from None
    arch = ", ".join(config.get("architectures") or []) or "?"
    info.lines.append(
        f"# Hugging Face folder: model_type {config.get('model_type', '?')} ({arch}); "
        f"the gguf recipe converts it for llama.cpp"
    )


def _describe_onnx(info: ModelInfo) -> None:
    from edgebuild.input_shapes import choose_shapes
    from edgebuild.onnxinfo import describe_io, read_onnx

    model = read_onnx(info.path, info.source)
    io = describe_io(model)
    choices, probe_note = choose_shapes(info.path, model=model)
    for choice in choices:
        info.lines.append(f"# input  {choice.name}: {choice.dtype} {_declared(choice.model_shape)}")
    for out in io["outputs"]:
        info.lines.append(f"# output {out['name']}: {out['dtype']} {_declared(out['shape'])}")
    dynamic = [c for c in choices if c.dynamic]
    if dynamic:
        info.input_shapes = {c.name: c.shape for c in dynamic}
        info.lines.append("# Dynamic dimensions, fixed here for the targets that need static shapes:")
        for c in dynamic:
            for note in c.notes:
                info.lines.append(
                    f"#   {c.name} {note}" + ("   <-- GUESSED: check it" if "guess" in note else "")
                )
        shapes = ", ".join(f"{_toml_key(c.name)} = {json.dumps(c.shape)}" for c in dynamic)
        info.lines.append(f"input_shapes = {{ {shapes} }}")
        info.lines.append(f"# {probe_note}")
    example = choices[0] if choices else None
    arrays = ", ".join(_py_argument(c.name) for c in choices) or "..."
    info.lines += [
        "# Data, as .npz files with one array per input name, batch first "
        f'(numpy.savez("data/{info.name}_calibration.npz", {arrays})):',
        f'# calibration = "data/{info.name}_calibration.npz"   # int8 targets: 100-500 representative inputs'
        + (
            f", e.g. {example.name}: {example.dtype} {json.dumps([100] + example.shape[1:])}"
            if example
            else ""
        ),
        f'# evaluation = "data/{info.name}_eval.npz"           # accuracy gates: the same arrays plus `labels` '
        "(int [N])",
        "# Without data, verification compares with the source model on generated inputs (standard normal);",
        "# declare their range when the model expects another, e.g. pixels:",
        "# input_range = [0.0, 255.0]",
    ]


def _declared(shape: list) -> str:
    """A shape as the model declares it; long symbolic expressions (shape inference's) become '?'."""
    return "[" + ", ".join(str(d) if d is not None and len(str(d)) <= 24 else "?" for d in shape) + "]"


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _py_argument(name: str) -> str:
    """How numpy.savez is given the array of input `name` (a keyword when the name allows one)."""
    return f"{name}=ARRAY" if name.isidentifier() else f"**{{{json.dumps(name)}: ARRAY}}"


def candidates(models: list[ModelInfo], devices: list[str], root: Path) -> list[Candidate]:
    from edgebuild.project import did_you_mean
    from edgebuild.recipes import load_recipe

    found: list[Candidate] = []
    every_device: set[str] = set()
    for info in models:
        prefix = f"{info.name}-" if len(models) > 1 else ""  # bundles are named <project>-<target>
        table = FOLDER_TARGETS if info.folder else ONNX_TARGETS
        if not devices:
            for recipe, suffix, device, settings, comment in table:
                found.append(
                    Candidate(f"{prefix}{suffix}", info.name, recipe, device, dict(settings), comment)
                )
            continue
        known: dict[str, list[str]] = {}  # device -> the recipes (for this kind of model) that list it
        for recipe, *_ in table:
            for device in load_recipe(recipe, root if (root / "recipes").is_dir() else None).devices:
                known.setdefault(device, []).append(recipe)
        every_device |= set(known)
        for device in devices:
            for recipe in known.get(device, []):  # a device no recipe of this model lists: other models'
                row = next(r for r in table if r[0] == recipe)
                name = f"{prefix}{to_name(device)}" + (f"-{recipe}" if len(known[device]) > 1 else "")
                found.append(Candidate(name, info.name, recipe, device, dict(row[3]), row[4]))
    for device in devices:
        if device not in every_device:
            raise ConfigError(
                f"--device: unknown device '{device}'{did_you_mean(device, every_device)}; "
                f"known devices: {', '.join(sorted(every_device))}"
            )
    if not found:
        raise ConfigError("--device: none of the given devices fits these models")
    return found


def render(project: str, models: list[ModelInfo], targets: list[Candidate], reports: dict | None) -> str:
    lines = [
        f"# Written by `edgebuild init` from {', '.join(m.source for m in models)}.",
        "# Next: `edgebuild check` (operator coverage per target; needs no data), then `edgebuild all`",
        "# (build, verify and bundle every target). Format: README.md, section targets.toml.",
        "",
        "[project]",
        f"name = {json.dumps(project)}",
        'version = "0.1.0"',
    ]
    for info in models:
        lines += ["", f"[models.{info.name}]", f"source = {json.dumps(info.source)}", *info.lines]
    for cand in targets:
        report = (reports or {}).get(cand.name)
        active = report is None or report["status"] in ("ok", "none")
        lines.append("")
        if report is not None:
            lines += [f"# check: {_wrap(report['summary'] or report['status'])}"]
            lines += [f"# {note}" for note in report.get("notes", [])]
            if not active:
                lines += [f"# problem: {p}" for p in report.get("problems", [])]
                lines.append(f"# Left out: the check says {report['status']}. Fix that, then uncomment:")
        body = [
            f"[targets.{cand.name}]",
            f"model = {json.dumps(cand.model)}",
            f"recipe = {json.dumps(cand.recipe)}",
        ]
        if cand.device:
            body.append(f"device = {json.dumps(cand.device)}")
        for key, value in cand.settings.items():
            body.append(f"{key} = {json.dumps(value)}")
        body[-1] += f"   # {cand.comment}"
        lines += body if active else [f"# {line}" for line in body]
    return "\n".join(lines) + "\n"


def _wrap(text: str) -> str:
    return " ".join(text.split())


def _write_new(file: Path, text: str) -> None:
    """Write `file` whole or not at all, never over an existing one (even one written meanwhile):
    a temp file hard-linked into place (link fails if the name exists), then the temp removed."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".targets-", suffix=".toml", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # a normal project file, not mkstemp's 0600
        os.link(tmp, file)
    except FileExistsError:
        raise ConfigError(f"{file} already exists: init never overwrites it") from None
    finally:
        os.unlink(tmp)


def run(args) -> int:
    from edgebuild.commands.check import check_targets
    from edgebuild.session import build_session

    root = Path(args.project).resolve()
    if not root.is_dir():
        raise ConfigError(f"project folder not found: {args.project}")
    file = root / PROJECT_FILE
    if file.exists():
        raise ConfigError(f"{file} already exists: init never overwrites it (edit it, or move it away first)")
    taken: set[str] = set()
    models = [describe_model(m, root, taken) for m in args.models]
    targets = candidates(models, args.devices, root)
    project_name = to_name(models[0].name)
    draft = render(project_name, models, targets, None)
    project = parse_project(root, file, draft)  # what init writes must load
    with build_session(args, None, project) as session:
        reports = check_targets(session, args.jobs, quiet=args.quiet, verbose=args.verbose)
    text = render(project_name, models, targets, reports)
    active = [t for t in targets if reports[t.name]["status"] in ("ok", "none")]
    if active:
        parse_project(root, file, text)
    _write_new(file, text)
    if not args.quiet:
        print(
            f"wrote {PROJECT_FILE}: {len(active)} target(s)"
            + (
                f", {len(targets) - len(active)} left out (commented, with the reason)"
                if len(active) < len(targets)
                else ""
            ),
            file=sys.stderr,
        )
        for cand in targets:
            report = reports[cand.name]
            mark = "ok" if cand in active else "left out"
            print(
                f"  {mark:>8}  {cand.name} [{cand.recipe}]: {_wrap(report['summary'] or report['status'])}",
                file=sys.stderr,
            )
            for note in report.get("notes", []):
                print(f"            {note.split(':')[0]}", file=sys.stderr)
        if any(c.input_shapes and any("GUESSED" in line for line in c.lines) for c in models):
            print("  some input dimensions are guesses: see the comments in targets.toml", file=sys.stderr)
        print("next: edgebuild check && edgebuild all", file=sys.stderr)
    return 0


@click.command("init")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option(
    "--device",
    "devices",
    multiple=True,
    metavar="NAME",
    help="make targets for this device only (repeatable; default: one per recipe)",
)
@opt.project
@opt.jobs
@opt.verbose
@opt.quiet
@opt.remote_cache
def command(**params) -> int:
    return opt.call(run, params)

"""Built-in step classes are named after their step kind ("ort.quantize" -> OrtQuantizeStep), and
the kind string, never the class name, is what action keys record: renaming a class rebuilds nothing."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import edgebuild.steps
from edgebuild.actionkey import action_key, key_parts
from edgebuild.graph import InputRef, Node


def builtin_steps() -> dict[str, type]:
    found = {}
    for module in pkgutil.iter_modules(edgebuild.steps.__path__):
        found.update(getattr(importlib.import_module(f"edgebuild.steps.{module.name}"), "STEPS", {}))
    return found


def class_name(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split(".")) + "Step"


def test_every_builtin_step_class_is_named_after_its_kind():
    steps = builtin_steps()
    assert {"ort.quantize", "tflite.convert", "gguf.quantize", "tensorrt.quantize", "coreml.convert"} <= set(
        steps
    )
    wrong = {kind: cls.__name__ for kind, cls in steps.items() if cls.__name__ != class_name(kind)}
    assert wrong == {}
    assert all(cls.name == kind for kind, cls in steps.items())


def test_the_class_name_is_not_part_of_the_action_key():
    cls = builtin_steps()["ort.quantize"]
    renamed = type("SomeOtherName", (cls,), {})
    model = InputRef(label="m.onnx", path=Path("m.onnx"), digest="ab" * 32)

    def key(step_cls) -> str:
        node = Node(
            id="n",
            step="ort.quantize",
            step_cls=step_cls,
            params={"precision": "int8"},
            inputs={"model": model},
            toolchain=None,
        )
        return action_key(key_parts(node, {"model": model.digest}, {"python": "3.11"}))

    assert key(renamed) == key(cls)
    bumped = type("OrtQuantizeStep", (cls,), {"version": cls.version + "-next"})
    assert key(bumped) != key(cls)  # while the step's version is part of it

"""The one generator of `LoadModel.swift`: Swift that loads the model and runs one prediction.

The coreml.inspect step writes it beside the package, and every Core ML bundle carries it
(bundle/loaders.py render_swift). It uses the generic MLModel API rather than the class Xcode
generates, so it works whatever the package file is renamed to, loads either the .mlmodelc Xcode
compiles into an app or the model file of an unpacked bundle (compiled on the device), and spells
out each input's shape, type and preprocessing (image inputs take a CGImage).
Standard library only: the bundle writer can call it without the Core ML toolchain.
"""

from __future__ import annotations

import re
from pathlib import Path

_SWIFT_KEYWORDS = {
    "associatedtype",
    "class",
    "deinit",
    "enum",
    "extension",
    "func",
    "import",
    "init",
    "inout",
    "let",
    "operator",
    "protocol",
    "static",
    "struct",
    "subscript",
    "typealias",
    "var",
    "break",
    "case",
    "continue",
    "default",
    "defer",
    "do",
    "else",
    "fallthrough",
    "for",
    "guard",
    "if",
    "in",
    "repeat",
    "return",
    "switch",
    "where",
    "while",
    "as",
    "is",
    "nil",
    "self",
    "super",
    "throw",
    "throws",
    "true",
    "false",
    "try",
    "model",
    "features",
    "result",
}
_COMPUTE_UNITS = {
    "ALL": ".all",
    "CPU_ONLY": ".cpuOnly",
    "CPU_AND_GPU": ".cpuAndGPU",
    "CPU_AND_NE": ".cpuAndNeuralEngine",
}
# numpy dtype name -> (MLMultiArrayDataType, Swift element type)
_ARRAY_TYPES = {
    "float32": (".float32", "Float"),
    "float16": (".float16", "Float16"),
    "float64": (".double", "Double"),
    "int32": (".int32", "Int32"),
}


def _identifier(name: str, upper_first: bool = False) -> str:
    parts = [p for p in re.split(r"\W+|_", name) if p]
    if not parts:
        parts = ["value"]
    text = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    text = text[:1].upper() + text[1:] if upper_first else text[:1].lower() + text[1:]
    if text[0].isdigit():
        text = ("V" if upper_first else "v") + text
    return text + "Value" if text in _SWIFT_KEYWORDS else text


def _swift_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _input_parameter(feature: dict) -> tuple[str, list[str]]:
    """(parameter declaration, lines that turn it into an MLFeatureValue named `<param>Feature`)."""
    param = _identifier(feature["name"])
    shape = [int(d) for d in feature.get("shape", [])]
    if feature.get("image") is not None:
        image = feature["image"]
        note = ""
        if "scale" in image:
            note = f" (the package computes scale * pixel + bias: scale {image['scale']:g}, bias {image.get('bias')})"
        size = f" {shape[-1]}x{shape[-2]}" if len(shape) >= 2 else ""
        return f"{param}: CGImage", [
            f"// {feature['name']}: {image.get('color_layout', image.get('color_space', 'RGB'))} image{size}{note}",
            f"let {param}Constraint = model.modelDescription.inputDescriptionsByName[{_swift_string(feature['name'])}]!.imageConstraint!",
            f"let {param}Feature = try MLFeatureValue(cgImage: {param}, constraint: {param}Constraint, options: nil)",
        ]
    data_type, element = _ARRAY_TYPES.get(feature.get("dtype", "float32"), (".float32", "Float"))
    number = "Float(v)" if element == "Float16" else "v"  # NSNumber has no Float16 initialiser
    count = 1
    for d in shape:
        count *= d
    shape_text = ", ".join(str(d) for d in shape)
    return f"{param}: [{element}]", [
        f"// {feature['name']}: {feature.get('dtype', 'float32')} [{shape_text}], row-major ({count} values)",
        f'precondition({param}.count == {count}, "{feature["name"]} needs {count} values")',
        f"let {param}Array = try MLMultiArray(shape: [{shape_text}], dataType: {data_type})",
        f"for (i, v) in {param}.enumerated() {{ {param}Array[i] = NSNumber(value: {number}) }}",
        f"let {param}Feature = MLFeatureValue(multiArray: {param}Array)",
    ]


def _output_lines(outputs: list[dict]) -> list[str]:
    """The body's last lines: the named outputs, or every multi-array output when none are known."""
    if not outputs:
        return [
            "var outputs: [String: MLMultiArray] = [:]",
            "for name in result.featureNames {",
            "    if let array = result.featureValue(for: name)?.multiArrayValue { outputs[name] = array }",
            "}",
            "return outputs",
        ]
    return [
        "return [",
        *[
            f"    {_swift_string(f['name'])}: result.featureValue(for: {_swift_string(f['name'])})!.multiArrayValue!,"
            for f in outputs
        ],
        "]",
    ]


def swift_snippet(
    io: dict,
    package_name: str,
    compute_units: str = "ALL",
    model_file: str | None = None,
    bundle_name: str | None = None,
) -> str:
    """Swift source that loads the model and predicts: `load()` takes the .mlmodelc Xcode compiles
    `model_file` (default `<package_name>.mlpackage`) into in an app, `load(bundleFolder:)` compiles
    `model_file` from an unpacked edgebuild bundle on the device.

    io: the artifact metadata's "io" ({"inputs": [{"name", "shape", "dtype", "image"?}], "outputs": [...]}).
    bundle_name: the bundle this snippet ships in, if any (its header then says to verify it first).
    """
    model_file = model_file or f"{package_name}.mlpackage"
    type_name = _identifier(package_name, upper_first=True) + "Loader"
    units = _COMPUTE_UNITS.get(compute_units, ".all")
    inputs = io.get("inputs", [])
    outputs = io.get("outputs", [])
    params, body = [], []
    for feature in inputs:
        declaration, lines = _input_parameter(feature)
        params.append(declaration)
        body.extend(lines)
    if inputs:
        provider = (
            "["
            + ", ".join(f"{_swift_string(f['name'])}: {_identifier(f['name'])}Feature" for f in inputs)
            + "]"
        )
    else:  # inputs unknown: the caller passes them by name
        params = ["inputs: [String: MLMultiArray]"]
        provider = "inputs.mapValues { MLFeatureValue(multiArray: $0) }"
    uses_images = any(f.get("image") is not None for f in inputs)
    output_docs = (
        "; ".join(f"{f['name']} {f.get('dtype', 'float32')} {list(f.get('shape', []))}" for f in outputs)
        or "every multi-array output, by name"
    )
    imports = ["import CoreML", "import Foundation"] + (["import CoreGraphics"] if uses_images else [])
    header = [f"// LoadModel.swift - generated by edgebuild for {model_file}"]
    if bundle_name:
        header += [
            f"// Shipped in the bundle {bundle_name}. Verify the bundle first (`python loader.py verify --key",
            "// edgebuild.pub.pem`, or check manifest.json's sha256 values with CryptoKit) before using its model.",
        ]
    header.append(
        f"// In an app: add {model_file} to the target; Xcode compiles it into "
        f"{Path(model_file).stem}.mlmodelc, which load() finds."
    )
    indent = "        "
    lines = [
        *header,
        *imports,
        "",
        f"enum {type_name} {{",
        "    static func configuration() -> MLModelConfiguration {",
        "        let configuration = MLModelConfiguration()",
        f"        configuration.computeUnits = {units}",
        "        return configuration",
        "    }",
        "",
        "    /// Loads the model Xcode compiled into the app bundle.",
        "    static func load() throws -> MLModel {",
        f'        guard let url = Bundle.main.url(forResource: {_swift_string(Path(model_file).stem)}, withExtension: "mlmodelc") else {{',
        "            throw CocoaError(.fileNoSuchFile)",
        "        }",
        "        return try MLModel(contentsOf: url, configuration: configuration())",
        "    }",
        "",
        "    /// Compiles the model of an unpacked (and verified) bundle folder on the device and loads it;",
        "    /// compiling takes a while: keep the returned model (or the compiled URL) in a real app.",
        "    static func load(bundleFolder: URL) throws -> MLModel {",
        f"        let compiled = try MLModel.compileModel(at: bundleFolder.appendingPathComponent({_swift_string(model_file)}))",
        "        return try MLModel(contentsOf: compiled, configuration: configuration())",
        "    }",
        "",
        f"    /// Runs one prediction. Outputs: {output_docs}.",
        f"    static func predict(model: MLModel, {', '.join(params)}) throws -> [String: MLMultiArray] {{",
        *[indent + line for line in body],
        f"{indent}let features = try MLDictionaryFeatureProvider(dictionary: {provider})",
        f"{indent}let result = try model.prediction(from: features)",
        *[indent + line for line in _output_lines(outputs)],
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)

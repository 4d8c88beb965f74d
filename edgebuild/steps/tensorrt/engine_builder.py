"""Building a serialized TensorRT engine from an ONNX file and a builder_config.json dict.

Written against the real TensorRT Python API (8.5 to 11.x) and importing nothing: the `tensorrt`
module is passed in, so a host without TensorRT can still import this file. The build step uses it
on build agents, and the generated loader of TensorRT bundles carries this file verbatim
(templates/loader_tensorrt.py.j2) for first-run builds on the device, so it must stay Python 3.7
code with no `from __future__` line and no imports.

Precision: TensorRT 11 networks are always strongly typed, so precision comes from the ONNX graph
(FP16 tensors, Q/DQ nodes) and no precision flags exist. 10.x and 8.x take builder flags: FP16 for
fp16, INT8 + FP16 for int8 (Q/DQ layers run in INT8, the rest may fall back to FP16).
"""


class EngineBuildError(Exception):
    """TensorRT rejected the network or could not build it; the message says why."""


def tensorrt_major(trt):
    return int(str(trt.__version__).split(".")[0])


def precision_flags(config_dict, major):
    """Builder flag names for this precision on this TensorRT major version."""
    if major >= 11:
        return []
    return {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}[config_dict["precision"]]


def build_engine(trt, onnx_path, config_dict, timing_cache=b"", logger=None):
    """Returns (engine bytes, timing cache bytes). Raises EngineBuildError."""
    logger = logger or trt.Logger(trt.Logger.WARNING)
    major = tensorrt_major(trt)
    builder = trt.Builder(logger)
    creation_flags = 0
    if major < 10:  # implicit batch was still the default before 10.0
        creation_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(creation_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise EngineBuildError(
            "TensorRT's ONNX parser rejected %s: %s" % (onnx_path, "; ".join(errors) or "no detail")
        )

    settings = config_dict["builder"]
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_bytes"]))
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = int(settings["optimization_level"])
    for flag in precision_flags(config_dict, major):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if settings["hardware_compatibility"] != "none":
        config.hardware_compatibility_level = getattr(
            trt.HardwareCompatibilityLevel, settings["hardware_compatibility"].upper()
        )
    if settings["version_compatible"]:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    for profile_dict in settings["profiles"]:
        profile = builder.create_optimization_profile()
        for name in sorted(profile_dict):
            shapes = profile_dict[name]
            profile.set_shape(name, tuple(shapes["min"]), tuple(shapes["opt"]), tuple(shapes["max"]))
        config.add_optimization_profile(profile)
    cache = config.create_timing_cache(bytes(timing_cache or b""))
    config.set_timing_cache(cache, False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(
            "TensorRT could not build an engine for %s (see the TensorRT log above)" % onnx_path
        )
    return bytes(serialized), bytes(config.get_timing_cache().serialize())

"""A target's split plan from its project: prepare the model at the declared shapes, profile it
here, read the device profile, and plan (the glue between targets.toml and the planner)."""

from __future__ import annotations

from dataclasses import dataclass

from edgebuild.errors import BuildFailed, ConfigError
from edgebuild.split import costs as cost_model
from edgebuild.split import model_graph, planner, profiler


@dataclass
class TargetPlan:
    plan: planner.Plan
    samples: dict  # input name -> samples (batch first) for checks
    data: str  # which data the samples are
    host_profile: dict


def plan_target(project, resolved) -> TargetPlan:
    from edgebuild.evaldata import verification_data
    from edgebuild.onnxinfo import describe_io
    from edgebuild.steps.base import StepFailed

    target, model = resolved.target, resolved.model
    config = target.split
    key = f"targets.{target.name}"
    if config is None:
        raise project.error("has no split table: add [targets.NAME.split] (see README, Split inference)", key)
    if model.is_folder:
        raise project.error("split inference needs an ONNX source model", f"models.{model.name}.source")
    try:
        prepared = model_graph.prepare_model(model.source, model.input_shapes)
    except ValueError as exc:
        raise project.error(str(exc), f"models.{model.name}.input_shapes") from None
    try:
        graph = model_graph.analyse(prepared)
    except Exception as exc:  # onnxruntime could not run the model to size its tensors
        raise BuildFailed(
            f"{model.source.name}: cannot size the model's tensors at input_shapes "
            f"{model.input_shapes}: {str(exc).splitlines()[0][:300]}"
        ) from None
    inputs = {"evaluation": model.evaluation, "calibration": model.calibration}
    try:
        samples, _, data = verification_data(
            inputs,
            describe_io(prepared)["inputs"],
            {"input_shapes": model.input_shapes, "input_range": getattr(model, "input_range", {})},
            count=8,
        )
    except StepFailed as exc:
        raise ConfigError(str(exc), project.file, f"models.{model.name}") from None
    first = {n: samples[n][: graph.tensors[n].shape[0]] for n in graph.inputs}
    try:
        model_bytes = prepared.SerializeToString()
        host = profiler.profile_model(model_bytes, first, runs=config.profile_runs, threads=config.threads)
        host = profiler.calibrated(
            host, profiler.time_model(model_bytes, first, runs=config.profile_runs, threads=config.threads)
        )
    except Exception as exc:  # e.g. an op onnxruntime's CPU provider lacks
        raise BuildFailed(
            f"{model.source.name}: onnxruntime could not profile the model: {str(exc).splitlines()[0][:300]}"
        ) from None
    device_profile = None
    if config.device_profile is not None:
        try:
            device_profile = profiler.load_profile(config.device_profile)
        except ValueError as exc:
            raise ConfigError(str(exc), project.file, f"{key}.split.device_profile") from None
        if not set(device_profile["nodes"]) & set(graph.names):
            raise ConfigError(
                "the device profile names none of this model's nodes (profile a half or the "
                "model edgebuild split-plan --out wrote)",
                project.file,
                f"{key}.split.device_profile",
            )
    recipe_factor = resolved.device_profile.get("speed_factor")
    costs = cost_model.node_costs(
        graph.names,
        host["nodes"],
        device_profile,
        config.speed_factor,
        float(recipe_factor) if isinstance(recipe_factor, (int, float)) else None,
        config.server_speed_factor,
    )
    try:
        plan = planner.make_plan(graph, costs, config.links, config.intermediate, config.keep_on_device)
    except KeyError as exc:
        raise project.error(
            f"no node named {exc.args[0]!r} in the model (node names: {', '.join(graph.names[:5])}, ...)",
            f"{key}.split.keep_on_device",
        ) from None
    plan.notes.append(
        f"server times: measured here with onnxruntime's profiler ({config.profile_runs} runs, "
        f"{config.threads} thread(s)), scaled by {host['scale']:.3g} to the model's wall time "
        f"{host['wall_ms']:.3f} ms, x {config.server_speed_factor:g}"
    )
    return TargetPlan(plan, samples, data, host)

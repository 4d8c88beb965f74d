"""TFLite steps: conversion with onnx2tf, checks of the produced file (integer-only, static shapes,
Edge TPU mapping prediction) and verification with ai-edge-litert against onnxruntime."""

from .convert import TfliteConvertStep
from .inspection import TfliteInspectStep
from .verify import TfliteVerifyStep

STEPS = {step.name: step for step in (TfliteConvertStep, TfliteInspectStep, TfliteVerifyStep)}

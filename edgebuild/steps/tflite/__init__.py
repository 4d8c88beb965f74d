"""TFLite steps: conversion with onnx2tf, checks of the produced file (integer-only, static shapes,
Edge TPU mapping prediction) and verification with ai-edge-litert against onnxruntime."""
from .convert import TfliteConvert
from .inspection import TfliteInspect
from .verify import TfliteVerify

STEPS = {step.name: step for step in (TfliteConvert, TfliteInspect, TfliteVerify)}

"""llama.cpp (GGUF files through llama-cpp-python); no ONNX coverage route applies."""
from edgebuild.runtimes.interface import RuntimeInterface


class LlamaCppRuntime(RuntimeInterface):
    name = "llama.cpp"
    loader_template = "loader_llama_cpp.py.j2"    # the name's dot is avoided in the file name

"""llama.cpp (GGUF files through llama-cpp-python); no ONNX coverage route applies."""

from edgebuild.runtimes.interface import RuntimeInterface


class LlamaCppRuntime(RuntimeInterface):
    name = "llama.cpp"
    step_kinds = ("gguf.",)
    loader_template = "loader_llama_cpp.py.j2"  # the name's dot is avoided in the file name
    # the manifest's model I/O and self-test (see RuntimeInterface.manifest_metadata)
    io_metadata = "io"
    selftest_output = "selftest.npz"  # written by gguf.verify, from llama.cpp's own run

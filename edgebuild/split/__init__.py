"""Split inference: run the first part of a model on the device, send one intermediate tensor set
over the network, run the rest on a server.

    config.py       the `[targets.NAME.split]` table of targets.toml, validated
    model_graph.py  the model as a DAG of nodes and tensors with their byte sizes at fixed shapes
    profiler.py     per-node times measured with onnxruntime's profiler (host, or a device: JSON)
    costs.py        per-node device/server times and per-link transfer times
    mincut.py       max-flow / min-cut on a small graph (the optimal partition of a DAG)
    planner.py      candidate cuts, their predicted latency per link profile, the chosen cut
    extract.py      both halves as ONNX and the check that server(device(x)) equals the model
    wire.py         the intermediate tensors on the wire: dtype, shape, fp16 / int8 with a scale
    serve.py        a minimal server for the server half and the device-side client (TCP)
"""

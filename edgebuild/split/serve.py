"""The minimal server for a server half, and the device-side client, over plain TCP.

    python -m edgebuild.split.serve server.onnx --port 8700         # prints "listening HOST:PORT"

Needs only numpy, onnxruntime and wire.py: copy serve.py and wire.py to a host without edgebuild.

Protocol: the device sends one wire frame (wire.py) per inference holding the tensors of the cut;
the server answers with one frame holding the server half's outputs (raw). A frame that is not
valid or does not name the server half's inputs with their shapes closes the connection.
"""
from __future__ import annotations

import argparse
import socket
import sys


try:
    from edgebuild.split import wire
except ImportError:         # copied next to a bundle without edgebuild: wire.py sits beside this file
    import wire


class ServerHalf:
    def __init__(self, model_path: str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, tensors: dict) -> dict:
        for name, shape in self.inputs.items():
            if name not in tensors:
                raise ValueError(f"frame lacks tensor {name!r}")
            if all(isinstance(d, int) for d in shape) and list(tensors[name].shape) != list(shape):
                raise ValueError(f"tensor {name!r} has shape {list(tensors[name].shape)}, expected {shape}")
        return dict(zip(self.outputs, self.session.run(None, {n: tensors[n] for n in self.inputs})))


def serve(model_path: str, host: str = "127.0.0.1", port: int = 0, threads: int = 1, connections: int = 0) -> None:
    """Serve until killed, or until `connections` connections have closed (when > 0)."""
    half = ServerHalf(model_path, threads)
    with socket.create_server((host, port)) as listener:
        bound = listener.getsockname()
        print(f"listening {bound[0]}:{bound[1]}", flush=True)
        served = 0
        while connections <= 0 or served < connections:
            conn, _ = listener.accept()
            served += 1
            with conn:
                try:
                    while True:
                        tensors = wire.recv_frame(conn)
                        conn.sendall(wire.encode(half.run(tensors)))
                except ConnectionError:
                    pass
                except ValueError as exc:       # a bad frame from the peer: drop the connection
                    print(f"refused a frame: {exc}", file=sys.stderr, flush=True)


class DeviceClient:
    """Runs the device half here and the rest on a server at `address` ("host:port")."""

    def __init__(self, device_model_path: str, address: str, intermediate: str = "fp32", sent=None,
                 threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(device_model_path, options, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        self.sent = list(sent) if sent is not None else self.names
        self.intermediate = intermediate
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.bytes_sent = 0

    def run(self, feeds: dict) -> dict:
        values = dict(zip(self.names, self.session.run(None, feeds)))
        frame = wire.encode({n: values[n] for n in self.sent}, self.intermediate)
        self.bytes_sent += len(frame)
        self.sock.sendall(frame)
        result = wire.recv_frame(self.sock)
        result.update({n: v for n, v in values.items() if n not in self.sent})   # outputs the device kept
        return result

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve the server half of a split model over TCP")
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=0, metavar="N",
                        help="exit after N connections have closed (default: serve until killed)")
    args = parser.parse_args(argv)
    serve(args.model, args.host, args.port, args.threads, args.connections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

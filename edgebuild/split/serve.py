"""The minimal server for a server half, and the device-side client, over plain TCP.

    python -m edgebuild.split.serve server.onnx --port 8700            # an ONNX half, or
    python -m edgebuild.split.serve BUNDLE_FOLDER --key pub.pem        # an unpacked bundle of any runtime
    python -m edgebuild.split.serve server.onnx --http --port 8700     # POST /v1/split instead of raw TCP

Either side may be an unpacked edgebuild bundle: its own loader.py (checksums, and the signature
when given a key) loads the artifact with the bundle's runtime and speaks the source model's terms
(names, NCHW layout, float values), so a TFLite or Core ML device half sends exactly what an ONNX
one would. Needs only numpy, the runtime and wire.py: serve.py and wire.py can be copied next to a
bundle on a host without edgebuild.

Protocol: the device sends one wire frame (wire.py) per inference holding the tensors of the cut;
the server answers with one frame holding the server half's outputs (raw). A frame that is not
valid or does not name the server half's inputs with their shapes closes the connection.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
from pathlib import Path

try:
    from edgebuild.split import wire
except ImportError:  # copied next to a bundle without edgebuild: wire.py sits beside this file
    import wire


class OnnxHalf:
    """A half as an .onnx file, run with onnxruntime."""

    def __init__(self, path: str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def predict(self, feeds: dict) -> dict:
        return dict(zip(self.outputs, self.session.run(None, {n: feeds[n] for n in self.inputs})))


class BundleHalf:
    """A half as an unpacked bundle, run by the bundle's own loader.py (any runtime it supports)."""

    def __init__(self, folder: str, public_key: str | None = None) -> None:
        folder = Path(folder).resolve()
        spec = importlib.util.spec_from_file_location(
            f"_edgebuild_split_loader_{abs(hash(str(folder)))}", folder / "loader.py"
        )
        module = importlib.util.module_from_spec(spec)
        keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # a bundle folder must stay as signed
        try:
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = keep
        self.model = module.Model(folder, public_key)  # verifies the folder first
        io = self.model.manifest["io"]
        self.inputs = {e["name"]: e.get("source_shape") or e["shape"] for e in io["inputs"]}
        self.outputs = [e["name"] for e in io["outputs"]]

    def predict(self, feeds: dict) -> dict:
        return self.model.predict({n: feeds[n] for n in self.inputs})


def load_half(path: str, public_key: str | None = None, threads: int = 1):
    return BundleHalf(path, public_key) if Path(path).is_dir() else OnnxHalf(path, threads)


def max_frame_payload(half) -> int:
    """The most bytes a valid frame for this half can carry (8 bytes per element: float64 at most);
    the wire limit when an input shape is not fixed."""
    total = 0
    for shape in half.inputs.values():
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            return wire.MAX_PAYLOAD
        count = 1
        for d in shape:
            count *= d
        total += 8 * count
    return total


def _check_frame(half, tensors: dict) -> None:
    for name, shape in half.inputs.items():
        if name not in tensors:
            raise ValueError(f"frame lacks tensor {name!r}")
        if all(isinstance(d, int) for d in shape) and list(tensors[name].shape) != list(shape):
            raise ValueError(f"tensor {name!r} has shape {list(tensors[name].shape)}, expected {shape}")


def serve(half, host: str = "127.0.0.1", port: int = 0, connections: int = 0) -> None:
    """Serve until killed, or until `connections` connections have closed (when > 0)."""
    limit = max_frame_payload(half)
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
                        tensors = wire.recv_frame(conn, limit)
                        _check_frame(half, tensors)
                        conn.sendall(wire.encode(half.predict(tensors)))
                except ConnectionError:
                    pass
                except ValueError as exc:  # a bad frame from the peer: drop the connection
                    print(f"refused a frame: {exc}", file=sys.stderr, flush=True)


def serve_http(half, host: str = "127.0.0.1", port: int = 0, requests: int = 0) -> None:
    """The same exchange over HTTP: POST /v1/split with one frame as the body (application/octet-stream)
    answers with one frame. Serves until killed, or `requests` requests (when > 0)."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    limit = 4 + 65536 + max_frame_payload(half)  # a header for a few tensors is far below 64 KiB

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or -1)
            if self.path != "/v1/split" or not 4 <= length <= limit:
                self.send_error(404 if self.path != "/v1/split" else 411)
                return
            try:
                tensors = wire.decode(self.rfile.read(length))
                _check_frame(half, tensors)
                body = wire.encode(half.predict(tensors))
            except (ValueError, KeyError) as exc:
                self.send_error(400, str(exc)[:200])
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # no access log on stderr
            pass

    with HTTPServer((host, port), Handler) as server:
        print(f"listening http://{server.server_address[0]}:{server.server_address[1]}/v1/split", flush=True)
        served = 0
        while requests <= 0 or served < requests:
            server.handle_request()
            served += 1


class DeviceClient:
    """Runs the device half here (an .onnx file, a bundle folder, or a loaded half) and the rest on
    a server at `address` ("host:port", or "http://host:port/v1/split"); `sent` names the half's outputs that go to the server
    (default: all), the others are outputs the device keeps."""

    def __init__(
        self,
        device,
        address: str,
        intermediate: str = "fp32",
        sent=None,
        public_key: str | None = None,
        threads: int = 1,
    ) -> None:
        self.half = load_half(str(device), public_key, threads) if isinstance(device, (str, Path)) else device
        self.sent = list(sent) if sent is not None else list(self.half.outputs)
        self.intermediate = intermediate
        self.url = address if address.startswith("http://") else None
        if self.url is None:
            host, _, port = address.rpartition(":")
            self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.bytes_sent = 0

    def _exchange(self, frame: bytes) -> dict:
        if self.url is None:
            self.sock.sendall(frame)
            return wire.recv_frame(self.sock)
        import urllib.request

        request = urllib.request.Request(
            self.url, data=frame, method="POST", headers={"Content-Type": "application/octet-stream"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return wire.decode(response.read(wire.MAX_HEADER + wire.MAX_PAYLOAD + 5))

    def run(self, feeds: dict) -> dict:
        values = self.half.predict(feeds)
        frame = wire.encode({n: values[n] for n in self.sent}, self.intermediate)
        self.bytes_sent += len(frame)
        result = self._exchange(frame)
        result.update({n: v for n, v in values.items() if n not in self.sent})  # outputs the device kept
        return result

    def close(self) -> None:
        if self.url is None:
            self.sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve the server half of a split model over TCP")
    parser.add_argument("half", help="the server half: an .onnx file or an unpacked bundle folder")
    parser.add_argument("--key", help="with a bundle: public key (PEM) its signature must verify with")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--http", action="store_true", help="serve POST /v1/split over HTTP instead of raw TCP"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=0,
        metavar="N",
        help="exit after N connections (with --http: requests) (default: serve until killed)",
    )
    args = parser.parse_args(argv)
    half = load_half(args.half, args.key, args.threads)
    (serve_http if args.http else serve)(half, args.host, args.port, args.connections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

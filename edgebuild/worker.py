"""Runs one step in its own process: `python -m edgebuild.worker REQUEST.json`.

The parent (executor) writes the request, captures stdout/stderr into the step's log file, and
reads RESULT.json. A crash, an out-of-memory kill or a segfault in a converter takes down only
this process; the build reports it with the log file. Imports only the standard library and
edgebuild.steps at top level, so it also runs in a toolchain environment where edgebuild is not
installed (the parent puts edgebuild's source on PYTHONPATH).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path


def run_request(request: dict) -> dict:
    from edgebuild.steps import Deferred, StepContext, StepFailed, get_step

    log = logging.getLogger(f"edgebuild.step.{request['step']}")
    ctx = StepContext(
        inputs={k: Path(v) for k, v in request["inputs"].items()},
        params=request["params"],
        out=Path(request["out"]),
        log=log,
        upstream=request.get("upstream", {}),
    )
    try:
        metadata = get_step(request["step"])().run(ctx) or {}
        return {"status": "ok", "message": None, "metadata": metadata}
    except Deferred as exc:
        return {"status": "deferred", "message": str(exc), "metadata": getattr(exc, "metadata", {}) or {}}
    except StepFailed as exc:
        return {"status": "failed", "message": str(exc), "metadata": getattr(exc, "metadata", {}) or {}}
    except ModuleNotFoundError as exc:  # a toolchain this host lacks: say what to install
        traceback.print_exc()
        return {
            "status": "failed",
            "metadata": {},
            "message": f"step {request['step']} needs the Python package '{exc.name}', which is not installed "
            f"in {sys.executable} (install edgebuild's extras: pip install 'edgebuild[all]')",
        }
    except Exception as exc:  # an internal error: the traceback goes to the log file
        traceback.print_exc()
        return {"status": "failed", "message": f"{type(exc).__name__}: {exc}", "metadata": {}}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    request = json.loads(Path(argv[1]).read_text())
    result = run_request(request)
    Path(request["result"]).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

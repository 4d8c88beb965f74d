"""Write the loader.py of every built-in runtime into a folder, for linting the generated code as a
whole (.ci/run runs ruff over them; tests/test_loader_modules.py does the same in the suite).

    python scripts/render_loaders.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgebuild.bundle.loaders import LOADER_TEMPLATES, render_loader
from edgebuild.bundle.spec import BundleSpec


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for runtime in sorted(LOADER_TEMPLATES):
        spec = BundleSpec(
            project="demo",
            version="1.0.0",
            target="t",
            device="d",
            recipe=runtime,
            runtime=runtime,
            artifacts={},
            io={},
            selftest=None,
        )
        path = out / f"loader_{runtime.replace('.', '_')}.py"
        path.write_text(render_loader(spec), encoding="utf-8")
        print(path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/render_loaders.py OUT_DIR")
    main(Path(sys.argv[1]))

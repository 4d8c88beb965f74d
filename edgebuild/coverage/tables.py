"""Loading the operator-coverage data files kept under `recipes/coverage/`.

Each file is tab-separated: leading `#` lines say where the facts come from and for which version,
the first other line names the columns. Files are read once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class CoverageTableError(Exception):
    """A coverage data file is missing or malformed (names the file and line)."""


@dataclass(frozen=True)
class Table:
    path: Path
    source: tuple[str, ...]  # the header comment lines, without '#'
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    @property
    def name(self) -> str:
        return self.path.name

    def source_line(self) -> str:
        return " ".join(self.source)


def tables_dir() -> Path:
    """`recipes/coverage` in a source checkout, `edgebuild/recipes/coverage` inside the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "recipes" / "coverage", here.parents[1] / "recipes" / "coverage"):
        if candidate.is_dir():
            return candidate
    raise CoverageTableError(f"coverage tables not found next to {here.parents[1]} (recipes/coverage)")


@lru_cache(maxsize=None)
def load_table(filename: str, directory: str | None = None) -> Table:
    path = Path(directory) / filename if directory else tables_dir() / filename
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CoverageTableError(f"{path}: cannot read coverage table ({exc.strerror})") from None
    source: list[str] = []
    columns: tuple[str, ...] | None = None
    rows: list[dict[str, str]] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            if columns is None:
                source.append(line.lstrip("#").strip())
            continue
        cells = line.split("\t")
        if columns is None:
            columns = tuple(c.strip() for c in cells)
            continue
        if len(cells) > len(columns):
            raise CoverageTableError(f"{path}:{lineno}: {len(cells)} cells, header has {len(columns)}")
        cells += [""] * (len(columns) - len(cells))
        rows.append({c: v.strip() for c, v in zip(columns, cells)})
    if columns is None:
        raise CoverageTableError(f"{path}: no header line")
    if not source:
        raise CoverageTableError(f"{path}: missing the '# source' header comment")
    return Table(path, tuple(source), columns, tuple(rows))

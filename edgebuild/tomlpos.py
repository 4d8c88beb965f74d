"""Line numbers for keys of a TOML file, so configuration errors can point at the line.

tomllib gives values without positions; this scans the text for table headers and `key =` lines,
which covers the shapes targets.toml and recipes use (tables, inline tables on one line).
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _split(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', dotted)]


def key_lines(text: str) -> dict[str, int]:
    """Map dotted key paths ("targets.coral.device", "targets.coral") to 1-based line numbers."""
    lines: dict[str, int] = {}
    table: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            table = _split(header.group(1))
            lines.setdefault(".".join(table), number)
            continue
        key = _KEY.match(raw)
        if key:
            path = ".".join(table + _split(key.group(1)))
            lines.setdefault(path, number)
            # keys of an inline table on the same line: `x = { a = 1, b = 2 }`
            inline = raw.split("=", 1)[1]
            if "{" in inline:
                for inner in re.findall(r"([A-Za-z0-9_\-]+)\s*=", inline):
                    lines.setdefault(f"{path}.{inner}", number)
    return lines


def line_of(lines: dict[str, int], dotted: str) -> int | None:
    """The line of `dotted`, or of its nearest enclosing table."""
    parts = dotted.split(".")
    while parts:
        found = lines.get(".".join(parts))
        if found is not None:
            return found
        parts.pop()
    return None

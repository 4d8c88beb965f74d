"""The `split` table of a target: where the model may be cut and over which links.

    [targets.phone.split]
    links = { wifi = { uplink_mbps = 50, rtt_ms = 5 }, lte = { uplink_mbps = 10, rtt_ms = 40 } }
    intermediate = "fp16"            # fp32 | fp16 | int8 (symmetric, one scale per tensor)
    keep_on_device = ["Conv.0"]      # node names that must run on the device
    device_profile = "profiles/phone.json"   # per-node times measured on the device (split profiler)
    speed_factor = 6.0               # without a device profile: device time = host time x this (estimate)
    server_precision = "fp16"        # the server half's onnxruntime precision (fp32 | fp16 | int8)

Only the standard library here: project loading validates the table before anything heavy loads.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

KEYS = {
    "links",
    "intermediate",
    "keep_on_device",
    "device_profile",
    "speed_factor",
    "server_speed_factor",
    "min_cosine",
    "threads",
    "profile_runs",
    "server_precision",
}
LINK_KEYS = {"uplink_mbps", "rtt_ms"}
INTERMEDIATES = ("fp32", "fp16", "int8")
# used when the table names no links: typical uplinks (Neurosurgeon's Wi-Fi / LTE / 3G scenarios)
DEFAULT_LINKS = {
    "wifi": {"uplink_mbps": 50.0, "rtt_ms": 5.0},
    "lte": {"uplink_mbps": 10.0, "rtt_ms": 40.0},
    "3g": {"uplink_mbps": 1.0, "rtt_ms": 150.0},
}
# composition gate (cosine of server(device(x)) against the full model), by intermediate precision
DEFAULT_MIN_COSINE = {"fp32": 0.99999, "fp16": 0.999, "int8": 0.99}


@dataclass(frozen=True)
class Link:
    name: str
    uplink_mbps: float
    rtt_ms: float

    def transfer_ms(self, nbytes: int) -> float:
        """Time to send nbytes once (no round trip): bytes*8 / (Mbit/s * 1000) in milliseconds."""
        return nbytes * 8.0 / (self.uplink_mbps * 1000.0)


@dataclass(frozen=True)
class SplitConfig:
    links: tuple[Link, ...]
    intermediate: str = "fp32"
    keep_on_device: tuple[str, ...] = ()
    device_profile: Path | None = None
    speed_factor: float | None = None  # None: from the recipe's device profile, else 1.0
    server_speed_factor: float = 1.0  # server time = host time x this
    min_cosine: float | None = None  # None: DEFAULT_MIN_COSINE[intermediate]
    threads: int = 1  # intra-op threads when profiling here
    profile_runs: int = 20
    server_precision: str = "fp32"  # the onnxruntime recipe's precision for the server half

    @property
    def cosine_gate(self) -> float:
        return self.min_cosine if self.min_cosine is not None else DEFAULT_MIN_COSINE[self.intermediate]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_split(table: Any, key: str, root: Path, fail: Callable[[str, str], Exception]) -> SplitConfig:
    """Validate a target's `split` table. fail(message, dotted_key) makes the error to raise (the
    project reader's, so it names file, key and line)."""
    if not isinstance(table, dict):
        raise fail(f"must be a table, not {type(table).__name__}", key)
    for name in table:
        if name not in KEYS:
            close = difflib.get_close_matches(name, sorted(KEYS), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise fail(
                f"unknown key in the split table{hint}; keys: {', '.join(sorted(KEYS))}", f"{key}.{name}"
            )
    links_table = table.get("links", DEFAULT_LINKS)
    if not isinstance(links_table, dict) or not links_table:
        raise fail(
            "must be a table of link profiles, e.g. { wifi = { uplink_mbps = 50, rtt_ms = 5 } }",
            f"{key}.links",
        )
    links = []
    for name, spec in links_table.items():
        where = f"{key}.links.{name}"
        if not isinstance(spec, dict):
            raise fail("must be a table { uplink_mbps = ..., rtt_ms = ... }", where)
        for k in spec:
            if k not in LINK_KEYS:
                raise fail("unknown key in a link profile; keys: uplink_mbps, rtt_ms", f"{where}.{k}")
        if not _number(spec.get("uplink_mbps")) or spec["uplink_mbps"] <= 0:
            raise fail(f"uplink_mbps must be a positive number, got {spec.get('uplink_mbps')!r}", where)
        rtt = spec.get("rtt_ms", 0.0)
        if not _number(rtt) or rtt < 0:
            raise fail(f"rtt_ms must be a number >= 0, got {rtt!r}", where)
        links.append(Link(str(name), float(spec["uplink_mbps"]), float(rtt)))

    intermediate = table.get("intermediate", "fp32")
    if intermediate not in INTERMEDIATES:
        raise fail(f"'{intermediate}' is not one of {', '.join(INTERMEDIATES)}", f"{key}.intermediate")
    server_precision = table.get("server_precision", "fp32")
    if server_precision not in INTERMEDIATES:
        raise fail(
            f"'{server_precision}' is not one of {', '.join(INTERMEDIATES)}", f"{key}.server_precision"
        )
    keep = table.get("keep_on_device", [])
    if not (isinstance(keep, list) and all(isinstance(n, str) and n for n in keep)):
        raise fail(f"must be a list of node names, got {keep!r}", f"{key}.keep_on_device")
    profile = None
    if "device_profile" in table:
        value = table["device_profile"]
        if not isinstance(value, str) or not value:
            raise fail(f"must be the path of a profile JSON, got {value!r}", f"{key}.device_profile")
        profile = (root / value).resolve()
        if not profile.is_file():
            raise fail(f"file not found: {value}", f"{key}.device_profile")
    factors = {}
    for name in ("speed_factor", "server_speed_factor", "min_cosine"):
        if name in table:
            value = table[name]
            if not _number(value) or value <= 0 or (name == "min_cosine" and value > 1):
                raise fail(
                    f"must be a positive number{' <= 1' if name == 'min_cosine' else ''}, got {value!r}",
                    f"{key}.{name}",
                )
            factors[name] = float(value)
    ints = {}
    for name in ("threads", "profile_runs"):
        if name in table:
            value = table[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise fail(f"must be a positive integer, got {value!r}", f"{key}.{name}")
            ints[name] = value
    return SplitConfig(
        links=tuple(links),
        intermediate=intermediate,
        keep_on_device=tuple(keep),
        device_profile=profile,
        speed_factor=factors.get("speed_factor"),
        server_speed_factor=factors.get("server_speed_factor", 1.0),
        min_cosine=factors.get("min_cosine"),
        server_precision=server_precision,
        **ints,
    )

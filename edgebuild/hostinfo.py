"""The machine a figure was measured on: CPU model, core count and load at that moment, so a
latency can be judged (a busy 2-core host is not a property of the model). Standard library only:
it also runs inside the converters' toolchain environments."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                    name = line.split(":", 1)[1].strip()
                    if name and not name.isdigit():
                        return " ".join(name.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def snapshot() -> dict:
    """{cpu, cores, load_1m, system}; load_1m is None where the OS has no load average."""
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        load = None
    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "load_1m": load,
        "system": f"{platform.system()} {platform.machine()}",
    }

"""Executors run step tasks somewhere and hand back their result (interface: base.py). Which one a
build uses is picked by `--executor`, a name or a URL scheme looked up in EXECUTORS; each module is
imported only when picked (`distributed` costs a second).

    local      local.py       a worker process per step on this host (default)
    inline     inline.py      in the edgebuild process, one at a time
    dask://    dask.py        on the build agents of a Dask scheduler (agent_side.py runs there)
"""

from __future__ import annotations

from collections.abc import Callable

from edgebuild.errors import ConfigError
from edgebuild.executors.base import Executor, Task, TaskResult

__all__ = ["EXECUTORS", "Executor", "Task", "TaskResult", "make_executor"]


def _local(spec: str, jobs: int, remote_url: str | None) -> Executor:
    from edgebuild.executors.local import LocalExecutor

    return LocalExecutor(jobs)


def _inline(spec: str, jobs: int, remote_url: str | None) -> Executor:
    from edgebuild.executors.inline import InlineExecutor

    return InlineExecutor()


def _dask(spec: str, jobs: int, remote_url: str | None) -> Executor:
    from edgebuild.executors.dask import DaskExecutor, parse_address

    return DaskExecutor(parse_address(spec), remote_url, jobs)


# `--executor` value (a name, or a URL scheme with its '://') -> factory(spec, jobs, remote_url)
EXECUTORS: dict[str, Callable[[str, int, str | None], Executor]] = {
    "local": _local,
    "inline": _inline,
    "dask://": _dask,
}


def make_executor(spec: str, jobs: int, remote_url: str | None = None) -> Executor:
    """remote_url: the shared cache URL as the session resolved it (session.resolve_remote), which a
    distributed executor moves files through."""
    scheme, sep, _ = spec.partition("://")
    factory = EXECUTORS.get(scheme + sep if sep else spec)
    if factory is None:
        raise ConfigError(f"unknown executor '{spec}': use local, inline or dask://HOST:PORT")
    return factory(spec, jobs, remote_url)

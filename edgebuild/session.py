"""What every command that plans or runs steps does first and last: load the project and its
recipes, open the cache (with the shared remote, if any) under the shared gc lock, build the step
graph, and on the way out save the stat cache and the installed-versions record."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from edgebuild.actionkey import INSTALLED
from edgebuild.cache import LocalCache
from edgebuild.errors import ConfigError
from edgebuild.graph import Graph, build_graph
from edgebuild.hashing import StatCache
from edgebuild.project import Project, load_project
from edgebuild.targets import resolve_all


REMOTE_ENV = "EDGEBUILD_REMOTE_CACHE"


@dataclass(frozen=True)
class RemoteSetting:
    """The shared cache URL of one command, decided once by resolve_remote; the build's cache and
    its executor both take it from here."""

    url: str | None
    source: str | None  # where it came from: "--remote-cache", "cache.remote" or REMOTE_ENV

    @property
    def read_through(self) -> bool:
        """Whether the local cache reads and writes through it. $EDGEBUILD_REMOTE_CACHE alone only
        names the store a distributed executor moves files through: it does not turn the shared
        cache on for every build in that shell."""
        return self.url is not None and self.source != REMOTE_ENV


@dataclass
class Session:
    project: Project
    cache: LocalCache
    stats: StatCache
    graph: Graph
    remote: RemoteSetting


def resolve_remote(args, project: Project) -> RemoteSetting:
    """--remote-cache URL ('' turns the shared cache off) over [cache] remote in targets.toml over
    $EDGEBUILD_REMOTE_CACHE. A URL the local cache uses is checked here, naming where it came from."""
    if args.remote_cache is not None:
        url, source = args.remote_cache or None, "--remote-cache"
    elif project.remote_cache:
        url, source = project.remote_cache, "cache.remote"
    else:
        url, source = os.environ.get(REMOTE_ENV) or None, REMOTE_ENV
    setting = RemoteSetting(url, source if url else None)
    if setting.read_through:
        # imported only with a URL: http.client costs a no-op build some 45 ms
        from edgebuild.remote_cache import url_problem

        if problem := url_problem(url):
            raise (
                project.error(problem, source)
                if source == "cache.remote"
                else ConfigError(problem, key=source)
            )
    return setting


def open_remote(remote: RemoteSetting):
    """The HttpCache the local cache reads and writes through, or None."""
    if not remote.read_through:
        return None
    from edgebuild.remote_cache import HttpCache

    return HttpCache(remote.url)


@contextmanager
def build_session(args, targets: list[str] | None, project: Project | None = None) -> Iterator[Session]:
    project = project or load_project(args.project)
    resolved = resolve_all(project, targets or None)
    from edgebuild.toolchain import require_trusted

    require_trusted(
        [r.recipe for r in resolved if any(s.toolchain != "default" for s in r.steps)],
        getattr(args, "trust_project_toolchains", False),
    )
    stats = StatCache(project.state_dir / "statcache.json")
    # with the stat cache attached, every blob a build uses is hashed whenever it changed
    remote = resolve_remote(args, project)
    cache = LocalCache.for_project(project.state_dir, open_remote(remote), stats)
    INSTALLED.use_file(project.state_dir / "versions.json")
    with cache.gc_lock(shared=True):
        cache.clean_stale_tmp()
        graph = build_graph(resolved, stats.digest, project.root)
        try:
            yield Session(project, cache, stats, graph, remote)
        finally:
            stats.save()
            INSTALLED.save()

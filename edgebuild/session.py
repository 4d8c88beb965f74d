"""What every command that plans or runs steps does first and last: load the project and its
recipes, open the cache (with the shared remote, if any) under the shared gc lock, build the step
graph, and on the way out save the stat cache and the installed-versions record."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from edgebuild.actionkey import INSTALLED
from edgebuild.cache import LocalCache
from edgebuild.graph import Graph, build_graph
from edgebuild.hashing import StatCache
from edgebuild.project import Project, load_project
from edgebuild.targets import resolve_all


@dataclass
class Session:
    project: Project
    cache: LocalCache
    stats: StatCache
    graph: Graph


def open_remote(args, project: Project):
    """The shared cache: --remote-cache URL over [cache] remote in targets.toml; None when neither.
    Its module is imported only then: http.client costs a no-op build some 45 ms."""
    if not (args.remote_cache or (args.remote_cache is None and project.remote_cache)):
        return None
    from edgebuild.remote_cache import remote_for
    return remote_for(args.remote_cache, project)


@contextmanager
def build_session(args, targets: list[str] | None, project: Project | None = None) -> Iterator[Session]:
    project = project or load_project(args.project)
    resolved = resolve_all(project, targets or None)
    from edgebuild.toolchain import require_trusted
    require_trusted([r.recipe for r in resolved if any(s.toolchain != "default" for s in r.steps)],
                    getattr(args, "trust_project_toolchains", False))
    stats = StatCache(project.state_dir / "statcache.json")
    # with the stat cache attached, every blob a build uses is hashed whenever it changed
    cache = LocalCache.for_project(project.state_dir, open_remote(args, project), stats)
    INSTALLED.use_file(project.state_dir / "versions.json")
    with cache.gc_lock(shared=True):
        cache.clean_stale_tmp()
        graph = build_graph(resolved, stats.digest, project.root)
        try:
            yield Session(project, cache, stats, graph)
        finally:
            stats.save()
            INSTALLED.save()

"""`edgebuild build [TARGET...]`, and the build session `all` and `bundle` share."""
from __future__ import annotations

import json
import sys

from edgebuild.actionkey import INSTALLED
from edgebuild.cache import LocalCache
from edgebuild.executor import make_executor
from edgebuild.graph import build_graph
from edgebuild.hashing import StatCache
from edgebuild.progress import make_reporter
from edgebuild.project import load_project
from edgebuild.scheduler import Scheduler
from edgebuild.state import save_result
from edgebuild.summary import exit_code, print_human, summary
from edgebuild.targets import resolve_all


def run(args) -> int:
    return run_build(args, args.targets, bundle=False)


def run_build(args, targets: list[str] | None, bundle: bool) -> int:
    project = load_project(args.project)
    resolved = resolve_all(project, targets or None)
    cache = LocalCache.for_project(project.state_dir, open_remote(args, project))
    stats = StatCache(project.state_dir / "statcache.json")
    INSTALLED.use_file(project.state_dir / "versions.json")
    with cache.gc_lock(shared=True):
        cache.clean_stale_tmp()
        graph = build_graph(resolved, stats.digest, project.root)
        executor = make_executor(args.executor, args.jobs, remote_cache=args.remote_cache
                                 if args.remote_cache is not None else project.remote_cache)
        sched = Scheduler(project.root, graph, cache, stats, executor,
                          make_reporter(args.quiet, args.verbose))
        if args.dry_run:
            from edgebuild.explain import dry_run
            rows = dry_run(sched)
            stats.save()
            INSTALLED.save()
            return _print_dry_run(rows, args.json)
        sched.run()
        results = sched.collect()
        if bundle:
            from edgebuild.bundling import bundle_targets
            bundle_targets(project, graph, sched, results, getattr(args, "bundle_version", None), args.quiet)
        stats.save()
        INSTALLED.save()
    doc = summary(graph, sched.outcomes, results)
    doc["ok"] = exit_code(doc, args.strict) == 0
    for name, data in doc["targets"].items():
        save_result(project.root, name, data)
    if args.json:
        print(json.dumps(doc, indent=1))
    elif not args.quiet:
        print_human(doc, sys.stderr)
    return exit_code(doc, args.strict)


def open_remote(args, project):
    """The shared cache: --remote-cache URL over [cache] remote in targets.toml; None when neither.
    Its module is imported only then: http.client costs a no-op build some 45 ms."""
    if not (args.remote_cache or (args.remote_cache is None and project.remote_cache)):
        return None
    from edgebuild.remote_cache import remote_for
    return remote_for(args.remote_cache, project)


def _print_dry_run(rows: list[dict], as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": True, "dry_run": True, "steps": rows}, indent=1))
        return 0
    for row in rows:
        if row["would_run"]:
            print(f"would run  {row['label']} ({row['step']}): {'; '.join(row['reasons'])}")
        else:
            print(f"cached     {row['label']} ({row['step']})")
    would = sum(r["would_run"] for r in rows)
    print(f"{would} of {len(rows)} steps would run")
    return 0

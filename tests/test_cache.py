"""The cache on its own terms: stat cache, keys free of paths, gc, stats, clean."""

from __future__ import annotations

import os

from conftest import run_cli, write_demo

from edgebuild.cache import LocalCache
from edgebuild.hashing import StatCache, sha256_file


def test_stat_cache_reads_unchanged_files_once(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(1 << 20))
    stats = StatCache(tmp_path / "stat.json")
    digest = stats.digest(path)
    assert digest == sha256_file(path)
    stats.save()
    again = StatCache(tmp_path / "stat.json")  # a later build
    assert again.digest(path) == digest
    assert again.bytes_hashed == 0
    os.utime(path, ns=(1, 1))  # touched: re-read once, same digest
    assert again.digest(path) == digest and again.bytes_hashed == 1 << 20
    path.write_bytes(b"changed")
    assert again.digest(path) != digest


def test_keys_do_not_depend_on_paths(tmp_path, built_demo):
    """The same project in another folder, sharing the cache, runs nothing."""
    cache = built_demo / ".edgebuild" / "cache"
    elsewhere = write_demo(tmp_path / "somewhere" / "else")
    result = run_cli(elsewhere, "build", "--json", env={"EDGEBUILD_CACHE_DIR": str(cache)})
    assert result.rc == 0, result.stderr
    assert result.json["steps"]["run"] == 0
    assert (elsewhere / "build" / "cpu-int8" / "digits_int8.onnx").read_bytes() == (
        built_demo / "build" / "cpu-int8" / "digits_int8.onnx"
    ).read_bytes()


def test_cache_stats_gc_and_clean(demo_copy):
    stats = run_cli(demo_copy, "cache", "stats", "--json").json
    assert stats["action_entries"] == 11 and stats["blobs"] > 0
    # an entry no target uses any more, older than the cutoff, is collected with its blobs
    cache = LocalCache(demo_copy / ".edgebuild" / "cache")
    orphan = cache.store.put_bytes(b"orphan output")
    cache.actions.put(
        "f" * 64,
        {"status": "ok", "outputs": {"x": {"type": "file", "digest": orphan, "size": 13}}, "metadata": {}},
    )
    os.utime(cache.root / "ac" / "ff" / ("f" * 64), (0, 0))
    result = run_cli(demo_copy, "cache", "gc", "--json", "--max-age", "1").json
    assert result["removed_entries"] == 1 and result["removed_blobs"] == 1
    assert not cache.store.has(orphan)
    assert run_cli(demo_copy, "build", "--json").json["steps"]["run"] == 0  # live entries survived
    assert run_cli(demo_copy, "clean").rc == 0
    assert not (demo_copy / "build").exists() and not (demo_copy / "bundles").exists()
    assert run_cli(demo_copy, "build", "--json").json["steps"]["run"] == 0  # the cache refills build/
    assert (demo_copy / "build" / "cpu-fp16" / "digits_fp16.onnx").is_file()


def test_blobs_are_content_addressed_and_read_only(demo_copy):
    for blob in list((demo_copy / ".edgebuild" / "cache" / "cas").glob("*/*"))[:5]:
        assert sha256_file(blob) == blob.name
        assert not os.stat(blob).st_mode & 0o222

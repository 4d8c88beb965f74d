# ruff: noqa: F821  (reads the loader's globals: verification, portable.py, delta_apply.py, fleet_runtime.py)
# The device's update path: `install` (stage, verify, self-test, activate), `rollback`, and the
# crash-safe switch of the <root>/active and <root>/previous links they share.
#
# Copied verbatim into every generated loader.py (edgebuild/bundle/templates/_common.py.j2).
# Python 3.7, standard library only.
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Layout: <root>/versions/<folder>/, <root>/active and <root>/previous links.
# Crash safety: each change below is one atomic rename, or touches something no link points at;
# the link switches go through a journal (<root>/switch.json, written atomically) that the next
# install or rollback rolls forward. So once `active` exists it always points at a complete,
# verified, self-tested folder, wherever a kill or power cut strikes, and `previous` never equals
# it; every leftover (staging copies, temporary links, unreferenced folders) is removed under the
# lock by the next install or rollback.
JOURNAL_NAME = "switch.json"
# The device's target and the highest version ever installed per project/target: a monotonic
# record (anti-rollback) that removing or re-pointing `active` does not reset.
RECORD_NAME = "installed.json"
_CHANGES = [0]


def _crash_point():
    """Test hook, inert unless EDGEBUILD_LOADER_CRASH_AT=N is set: then the process ends abruptly
    (no cleanup, like a power cut) just before its N-th file-system change during install or
    rollback. tests/test_bundle_crash.py kills at every such point."""
    _CHANGES[0] += 1
    if os.environ.get("EDGEBUILD_LOADER_CRASH_AT") == str(_CHANGES[0]):
        os._exit(137)


def _fsync_folder(path):
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path, data):
    tmp = path.parent / (".%s.tmp" % path.name)
    _crash_point()
    with open(str(tmp), "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    _crash_point()
    os.replace(str(tmp), str(path))
    _fsync_folder(path.parent)


def _switch_link(root, name, target):
    """Point root/name at target (relative) in one rename, so readers never see it missing."""
    tmp = root / (".%s.tmp" % name)
    if os.path.lexists(str(tmp)):
        _crash_point()
        os.unlink(str(tmp))
    _crash_point()
    os.symlink(target, str(tmp))
    _crash_point()
    os.replace(str(tmp), str(root / name))
    _fsync_folder(root)


def _remove(path):
    """Remove a file, link or folder; a folder is first renamed into staging/ (one atomic step),
    so a kill mid-removal leaves only staging garbage, never a half-deleted version folder."""
    if os.path.islink(str(path)) or os.path.isfile(str(path)):
        _crash_point()
        os.unlink(str(path))
    elif os.path.isdir(str(path)):
        root = path.parent.parent if path.parent.name == "versions" else None
        if root is not None and (root / "staging").is_dir():
            _crash_point()
            doomed = Path(tempfile.mkdtemp(prefix="old-", dir=str(root / "staging")))
            _crash_point()
            os.rename(str(path), str(doomed / path.name))
            path = doomed
        _crash_point()
        shutil.rmtree(str(path), ignore_errors=True)


def _link_folder(root, name):
    """The folder under versions/ that root/name points at: its name, None without a link, ""
    for a link that points anywhere else or at nothing (repair removes it)."""
    link = root / name
    if not os.path.islink(str(link)):
        return None
    parts = os.readlink(str(link)).split("/")
    if (
        len(parts) != 2
        or parts[0] != "versions"
        or parts[1] in ("", ".", "..")
        or not (root / "versions" / parts[1]).is_dir()
    ):
        return ""
    return parts[1]


def _linked_version(root, name):
    """The version root/name points at (from its manifest), or None."""
    manifest = _folder_manifest(root, _link_folder(root, name))
    return manifest.get("version") if manifest else None


def _folder_manifest(root, folder):
    if not folder:
        return None
    try:
        with open(str(root / "versions" / folder / MANIFEST_NAME), "rb") as handle:
            manifest = json.loads(handle.read(MAX_SIGNED_FILE).decode("utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _identity(manifest):
    """What a device root is for: (project, target, device)."""
    return (manifest.get("project"), manifest.get("target"), manifest.get("device"))


def _describe(identity):
    return "%s/%s (device %s)" % identity


def _read_record(root):
    path = root / RECORD_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BundleRejected(
            "cannot read the anti-rollback record %s (%s): restore it or remove it knowingly" % (path, exc)
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("highest"), dict):
        raise BundleRejected(
            "the anti-rollback record %s is damaged: restore it or remove it knowingly" % path
        )
    return record


def _lock(root):
    try:
        import fcntl
    except ImportError:  # not POSIX: no concurrent installs to guard against in practice
        return None
    if not (root / ".lock").exists():
        _crash_point()
    handle = open(str(root / ".lock"), "a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _apply(root, plan):
    """Carry out a journal's switch; doing it again after a kill is harmless. The order keeps
    `previous` different from `active` at every moment."""
    if _link_folder(root, "previous") == plan["active"]:
        _remove(root / "previous")
    _switch_link(root, "active", "versions/" + plan["active"])
    if plan.get("previous"):
        _switch_link(root, "previous", "versions/" + plan["previous"])
    elif os.path.lexists(str(root / "previous")):
        _remove(root / "previous")
    _write_atomic(
        root / RECORD_NAME, (json.dumps(plan["record"], sort_keys=True, indent=2) + "\n").encode("utf-8")
    )
    _remove(root / JOURNAL_NAME)
    _fsync_folder(root)


def _switch(root, plan):
    _write_atomic(root / JOURNAL_NAME, json.dumps(plan, sort_keys=True).encode("utf-8"))
    _apply(root, plan)


def _repair(root, log):
    """Bring root back to a consistent state after a killed install or rollback (under the lock).
    Returns the interrupted switch it completed, if any."""
    journal = root / JOURNAL_NAME
    plan = None
    if journal.exists():
        try:
            plan = json.loads(journal.read_text(encoding="utf-8"))
            complete = (
                _folder_name_ok(plan["active"])
                and (root / "versions" / plan["active"]).is_dir()
                and (plan.get("previous") is None or _folder_name_ok(plan["previous"]))
                and isinstance(plan.get("record"), dict)
            )
        except (ValueError, KeyError, TypeError, AttributeError, OSError):
            complete = False
        if complete:
            _apply(root, plan)
            log("completed an interrupted %s of %s" % (plan.get("action"), plan.get("version")))
        else:
            _remove(journal)
            plan = None
    for name in os.listdir(str(root)):
        if name.startswith(".") and name.endswith(".tmp"):
            _remove(root / name)
    active, previous = _link_folder(root, "active"), _link_folder(root, "previous")
    if active == "":
        # only an older loader or a hand edit leaves this: fall back to the previous version
        if previous:
            verify_folder(root / "versions" / previous)
            _switch_link(root, "active", "versions/" + previous)
            log("active pointed at a missing folder; %s is active again" % previous)
            active = previous
        else:
            _remove(root / "active")
            log("removed a dangling `active` link")
            active = None
    if previous == "" or (previous is not None and previous == active):
        _remove(root / "previous")
    for name in sorted(os.listdir(str(root / "staging"))):
        _remove(root / "staging" / name)
    repair_canary(root)
    _prune(root)
    return plan


def _folder_name_ok(name):
    return isinstance(name, str) and "/" not in name and name not in ("", ".", "..")


def _prune(root):
    keep = {_link_folder(root, "active"), _link_folder(root, "previous"), _link_folder(root, "candidate")}
    for name in sorted(os.listdir(str(root / "versions"))):
        if name not in keep:
            _remove(root / "versions" / name)


def _free_name(root, version):
    """versions/<version>, or <version>~N when that folder is in use (a forced reinstall): a
    folder a link points at is never renamed or replaced, only switched away from."""
    name, number = version, 1
    while os.path.lexists(str(root / "versions" / name)):
        number += 1
        name = "%s~%d" % (version, number)
    return name


def install(
    archive,
    root,
    public_key=None,
    force=False,
    log=print,
    retarget=False,
    index=None,
    canary=None,
    policy=None,
):
    """Stage, verify, self-test and activate a bundle; the active one becomes `previous`.
    Refuses a version lower than the active one or than any version this root ever had
    (anti-rollback) unless force, and a bundle for another project, target or device than the
    root's unless retarget. With `index` (a signed index.json), also refuses a bundle the index
    does not list or an index past its expiry. With `canary` (a share in (0, 1]), the bundle becomes
    the candidate beside the active version instead (fleet_runtime.py; `policy`: its rollback
    thresholds). Returns the installed version."""
    root = Path(root)
    for folder in (root, root / "versions", root / "staging"):
        if not folder.is_dir():
            _crash_point()
            folder.mkdir(parents=True, exist_ok=True)
    lock = _lock(root)
    staging = None
    try:
        _repair(root, log)
        if index is not None:
            check_index(index, archive, public_key)
        _crash_point()
        staging = Path(tempfile.mkdtemp(prefix="stage-", dir=str(root / "staging")))
        folder = _unpack_or_rebuild(archive, staging, public_key, root)
        if folder is None:
            log("the version this delta makes is already active")
            return _folder_manifest(root, _link_folder(root, "active"))["version"]
        _crash_point()  # (a kill during unpacking leaves the same kind of staging garbage as here)
        manifest_bytes = (folder / MANIFEST_NAME).read_bytes()
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        version = manifest["version"]
        record = _read_record(root)
        active = _link_folder(root, "active")
        current = _folder_manifest(root, active)
        held = _identity(record) if record else (_identity(current) if current else None)
        if held is not None and held != _identity(manifest) and not retarget:
            raise BundleRejected(
                "bundle is for %s but this root holds %s (use --retarget to switch)"
                % (_describe(_identity(manifest)), _describe(held))
            )
        retargeting = held is not None and held != _identity(manifest)
        line = "%s/%s" % (manifest["project"], manifest["target"])
        highest = dict((record or {}).get("highest", {}))
        if current is not None and not retargeting:
            order = compare_versions(version, current["version"])
            if order < 0 and not force:
                raise BundleRejected(
                    "refusing to install %s: lower than the active version %s "
                    "(anti-rollback; use --force or `rollback`)" % (version, current["version"])
                )
            if order == 0 and not force:
                if (root / "versions" / active / MANIFEST_NAME).read_bytes() == manifest_bytes:
                    log("%s is already active" % version)
                    return version
                raise BundleRejected(
                    "a different bundle with version %s is already active "
                    "(use --force to replace it)" % version
                )
            if (
                parse_semver(highest.get(line)) is None
                or compare_versions(current["version"], highest[line]) > 0
            ):
                highest[line] = current["version"]  # a root an older loader set up has no record yet
        if (
            parse_semver(highest.get(line)) is not None
            and compare_versions(version, highest[line]) < 0
            and not force
        ):
            raise BundleRejected(
                "refusing to install %s: %s was installed on this device before "
                "(anti-rollback record %s; use --force)" % (version, highest[line], RECORD_NAME)
            )
        # The staged bundle's own loader runs its self-test, in a separate process so a crashing
        # runtime cannot take the installer down with it.
        test = subprocess.run(
            [sys.executable, str(folder / "loader.py"), "selftest"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
        )
        for text in test.stdout.strip().splitlines():
            log("  " + text)
        if test.returncode != 0:
            raise BundleRejected("self-test of %s failed; the active version is unchanged" % version)
        name = _free_name(root, version)
        _crash_point()
        os.rename(str(folder), str(root / "versions" / name))
        if canary is not None:
            if retargeting or current is None:
                raise BundleRejected(
                    "a canary runs beside an active version of the same target: install "
                    "%s without --canary" % version
                )
            if os.path.lexists(str(root / "candidate")):
                _remove(root / "candidate")  # a new candidate replaces a running one
            start_canary(root, name, canary, policy, log)
            _prune(root)
            return version
        if retargeting:
            previous = None  # rollback never crosses targets
        elif current is not None and current["version"] != version:
            previous = active
        else:
            previous = _link_folder(root, "previous")
        if parse_semver(highest.get(line)) is None or compare_versions(version, highest[line]) > 0:
            highest[line] = version
        new_record = {
            "project": manifest["project"],
            "target": manifest["target"],
            "device": manifest.get("device"),
            "highest": highest,
        }
        _switch(
            root,
            {
                "action": "install",
                "version": version,
                "active": name,
                "previous": previous,
                "record": new_record,
            },
        )
        _prune(root)
        shown = _folder_manifest(root, previous)
        log("active: %s%s" % (version, " (previous: %s)" % shown["version"] if shown else ""))
        return version
    finally:
        if staging is not None and staging.exists():
            _remove(staging)
        if lock is not None:
            lock.close()


def _unpack_or_rebuild(archive, staging, public_key, root):
    """The staged folder of the bundle to install: the archive unpacked, or, for a delta bundle,
    the new version rebuilt from the active one and then verified exactly as an unpacked full
    bundle (its own signed manifest, every checksum). None when the delta's version is active."""
    folder = unpack_archive(archive, staging, public_key)
    manifest = json.loads((folder / MANIFEST_NAME).read_bytes().decode("utf-8"))
    if manifest.get("kind") != DELTA_KIND:
        return folder
    active = _link_folder(root, "active")
    if not active:
        raise BundleRejected(
            "%s is a delta: it needs an installed base version (%s); install the full bundle"
            % (Path(archive).name, (manifest.get("delta") or {}).get("base", {}).get("version"))
        )
    with open(str(root / "versions" / active / MANIFEST_NAME), "rb") as handle:
        if hashlib.sha256(handle.read()).hexdigest() == (manifest.get("delta") or {}).get("target", {}).get(
            "manifest_sha256"
        ):
            return None
    rebuilt = staging / ("rebuilt-" + folder.name)
    try:
        rebuild_bundle(manifest, str(folder), str(root / "versions" / active), str(rebuilt), path_problem)
    except DeltaRejected as exc:
        raise BundleRejected(str(exc)) from None
    verify_folder(rebuilt, public_key)
    _remove(folder)
    final = staging / folder.name
    os.rename(str(rebuilt), str(final))
    return final


def rollback(root, log=print):
    """Make `previous` active again (it is re-verified first); returns that version."""
    root = Path(root)
    if not (root / "versions").is_dir() or not (root / "staging").is_dir():
        raise BundleRejected("nothing to roll back to: %s holds no installed bundle" % root)
    lock = _lock(root)
    try:
        # under the lock: `previous` is read only after any interrupted switch is completed
        completed = _repair(root, log)
        if completed is not None and completed.get("action") == "rollback":
            return completed["version"]  # the rollback asked for again was the one interrupted
        active, previous = _link_folder(root, "active"), _link_folder(root, "previous")
        if not previous:
            raise BundleRejected("nothing to roll back to: %s has no previous version" % root)
        manifest = verify_folder(root / "versions" / previous)
        current = _folder_manifest(root, active)
        record = _read_record(root)
        held = _identity(record) if record else (_identity(current) if current else _identity(manifest))
        if _identity(manifest) != held:
            raise BundleRejected(
                "previous version %s is for %s but this root holds %s: rollback never "
                "crosses targets" % (manifest["version"], _describe(_identity(manifest)), _describe(held))
            )
        if record is None:
            record = {
                "project": held[0],
                "target": held[1],
                "device": held[2],
                "highest": {"%s/%s" % held[:2]: (current or manifest)["version"]},
            }
        _switch(
            root,
            {
                "action": "rollback",
                "version": manifest["version"],
                "active": previous,
                "previous": None,
                "record": record,
            },
        )
        _prune(root)
        log(
            "active: %s (rolled back from %s)"
            % (manifest["version"], current["version"] if current else "none")
        )
        return manifest["version"]
    finally:
        if lock is not None:
            lock.close()

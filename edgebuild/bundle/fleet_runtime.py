# ruff: noqa: F821  (the names it uses are the loader's own, defined around it in loader.py)
# Staged rollout and offline telemetry on the device: the loader's `install --canary`, `promote`,
# `open_root` and `metrics`.
#
# Pasted verbatim into every generated loader.py (after the update-path functions), never
# imported by edgebuild itself: it calls the loader's own functions (load, _lock, _repair,
# _switch, _switch_link, _remove, _prune, _link_folder, _folder_manifest, _read_record,
# _write_atomic, compare_versions, parse_semver). Python 3.7, standard library only (numpy is
# there when a model runs).
#
# A canary is a second installed version, linked as root/candidate, with root/canary.json saying
# which share of predictions (or of devices, by a stable hash of a device id) it serves and the
# thresholds that roll it back. Every candidate prediction is also run on the active version
# ("shadow"), so errors never reach the caller and agreement is measured. When the candidate has
# served `min_predictions` calls and breaks a threshold (error rate, p95 latency against the
# active version, agreement), it is removed and the reason appended to root/canary.log; a healthy
# one is made active with `promote` (through the same journalled switch as install).
import hashlib as _fleet_hashlib
import math as _fleet_math
import random as _fleet_random
import time as _fleet_time

CANARY_NAME = "canary.json"
CANARY_LOG = "canary.log"
TELEMETRY_DIR = "telemetry"
TELEMETRY_FILE = "telemetry.jsonl"
TELEMETRY_MAX_BYTES = 256 * 1024  # per file; one rotated file is kept beside it
TELEMETRY_EVERY = 100  # predictions between records (and at close)
LATENCY_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
DEFAULT_POLICY = {
    "max_error_rate": 0.02,
    "max_p95_latency_ratio": 1.5,
    "min_agreement": 0.98,
    "min_predictions": 200,
}


def start_canary(root, folder_name, share, policy=None, log=print):
    """Link versions/<folder_name> as the candidate serving `share` of predictions (under the lock
    the caller holds). canary.json is written before the link: a kill between leaves a state
    that repair_canary clears."""
    settings = dict(DEFAULT_POLICY)
    settings.update(policy or {})
    state = {
        "candidate": folder_name,
        "share": float(share),
        "started": int(_fleet_time.time()),
        "policy": settings,
    }
    _write_atomic(root / CANARY_NAME, (json.dumps(state, sort_keys=True, indent=2) + "\n").encode("utf-8"))
    _switch_link(root, "candidate", "versions/" + folder_name)
    manifest = _folder_manifest(root, folder_name)
    log(
        "candidate: %s serves %.0f%% of predictions (promote with `loader.py promote`; rolled back "
        "automatically on errors, slowness or disagreement)" % (manifest["version"], 100 * float(share))
    )


def repair_canary(root):
    """Drop a half-made or finished canary: state without its link, a link without state, or a
    candidate that is the active version (a promotion killed before its clean-up)."""
    candidate = _link_folder(root, "candidate")
    state = _canary_state(root)
    if (
        candidate
        and state is not None
        and state.get("candidate") == candidate
        and candidate != _link_folder(root, "active")
    ):
        return state
    for name in ("candidate", CANARY_NAME):
        if os.path.lexists(str(root / name)):
            _remove(root / name)
    return None


def _canary_state(root):
    try:
        state = json.loads((root / CANARY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("candidate"), str)
        or not isinstance(state.get("share"), (int, float))
        or not isinstance(state.get("policy"), dict)
    ):
        return None
    return state


def promote(root, log=print):
    """Make the candidate the active version; the active one becomes `previous`."""
    root = Path(root)
    lock = _lock(root)
    try:
        _repair(root, log)
        state = repair_canary(root)
        if state is None:
            raise BundleRejected("no canary to promote in %s" % root)
        candidate, active = state["candidate"], _link_folder(root, "active")
        manifest = verify_folder(root / "versions" / candidate)
        record = _read_record(root) or {
            "project": manifest["project"],
            "target": manifest["target"],
            "device": manifest.get("device"),
            "highest": {},
        }
        line = "%s/%s" % (manifest["project"], manifest["target"])
        highest = dict(record.get("highest", {}))
        if (
            parse_semver(highest.get(line)) is None
            or compare_versions(manifest["version"], highest[line]) > 0
        ):
            highest[line] = manifest["version"]
        record = dict(record, highest=highest)
        _switch(
            root,
            {
                "action": "promote",
                "version": manifest["version"],
                "active": candidate,
                "previous": active,
                "record": record,
            },
        )
        repair_canary(root)  # the candidate is now active: its link and state go
        _prune(root)
        log("active: %s (promoted from canary)" % manifest["version"])
        return manifest["version"]
    finally:
        if lock is not None:
            lock.close()


def abort_canary(root, reason, log=print):
    """Roll the candidate back: it stops serving, its folder goes, the reason is logged."""
    root = Path(root)
    lock = _lock(root)
    try:
        state = _canary_state(root)
        version = (_folder_manifest(root, state["candidate"]) or {}).get("version") if state else None
        for name in ("candidate", CANARY_NAME):
            if os.path.lexists(str(root / name)):
                _remove(root / name)
        _prune(root)
        line = "%s rolled back canary %s: %s\n" % (
            _fleet_time.strftime("%Y-%m-%dT%H:%M:%SZ", _fleet_time.gmtime()),
            version,
            reason,
        )
        with open(str(root / CANARY_LOG), "a") as handle:
            handle.write(line)
        log(line.strip())
    finally:
        if lock is not None:
            lock.close()


def _stable_share(device_id):
    """A device's place in [0, 1): the same on every run, spread evenly over devices."""
    digest = _fleet_hashlib.sha256(device_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / float(1 << 64)


class VersionStats(object):
    """Predictions, errors, latency histogram and agreement of one version, since the last record."""

    def __init__(self, version, manifest_sha256):
        self.version, self.manifest_sha256 = version, manifest_sha256
        self.calls = self.errors = self.compared = self.agreed = 0
        self.latencies = []
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.total_ms = 0.0

    def add(self, ms, error=False):
        self.calls += 1
        self.errors += bool(error)
        self.latencies.append(ms)
        self.total_ms += ms
        index = 0
        while index < len(LATENCY_BUCKETS_MS) and ms > LATENCY_BUCKETS_MS[index]:
            index += 1
        self.buckets[index] += 1

    def p95(self):
        ordered = sorted(self.latencies)
        return (
            ordered[min(len(ordered) - 1, int(_fleet_math.ceil(0.95 * len(ordered))) - 1)]
            if ordered
            else None
        )


class FleetModel(object):
    """The model of an install root: the active version, and while a canary runs, the candidate
    for its share of calls. predict() always answers (with the active version's output when the
    candidate fails)."""

    def __init__(self, root, device_id=None, public_key=None, seed=None):
        self.root = Path(root)
        self._random = _fleet_random.Random(seed)
        self.active_folder = _link_folder(self.root, "active")
        if not self.active_folder:
            raise BundleRejected("%s has no active version: install a bundle first" % self.root)
        self.active = load(self.root / "versions" / self.active_folder, public_key)
        self.state = _canary_state(self.root)
        self.candidate = None
        if self.state is not None and _link_folder(self.root, "candidate") == self.state["candidate"]:
            self.candidate = load(self.root / "versions" / self.state["candidate"], public_key)
        self.device_share = _stable_share(device_id) if device_id is not None else None
        self.stats = {"active": self._new_stats(self.active), "candidate": self._new_stats(self.candidate)}
        self.totals = {"active": [0, 0], "candidate": [0, 0, 0, 0]}  # calls, errors (, compared, agreed)
        self.rolled_back = None

    @staticmethod
    def _new_stats(model):
        if model is None:
            return None
        sha = _fleet_hashlib.sha256((model.folder / MANIFEST_NAME).read_bytes()).hexdigest()
        return VersionStats(model.manifest["version"], sha)

    def _use_candidate(self):
        if self.candidate is None:
            return False
        share = self.state["share"]
        if self.device_share is not None:
            return self.device_share < share
        return self._random.random() < share

    def predict(self, inputs):
        if not self._use_candidate():
            return self._timed("active", self.active, inputs, reraise=True)
        reference = self._timed("active", self.active, inputs, reraise=True)
        output = self._timed("candidate", self.candidate, inputs, reraise=False)
        stats = self.stats["candidate"]
        if output is not None:
            stats.compared += 1
            stats.agreed += _agree(reference, output)
            self.totals["candidate"][2] += 1
            self.totals["candidate"][3] += _agree(reference, output)
        self._judge()
        return output if output is not None else reference

    def _timed(self, role, model, inputs, reraise):
        start = _fleet_time.perf_counter()
        try:
            outputs = model.predict(inputs)
            error = not _finite(outputs)
        except Exception:
            if reraise:
                raise
            outputs, error = None, True
        ms = (_fleet_time.perf_counter() - start) * 1000.0
        self.stats[role].add(ms, error)
        self.totals[role][0] += 1
        self.totals[role][1] += bool(error)
        if self.stats[role].calls >= TELEMETRY_EVERY:
            self._record(role)
        return None if error else outputs

    def _judge(self):
        """Roll the candidate back once it has served enough calls and breaks a threshold."""
        policy = self.state["policy"]
        calls, errors, compared, agreed = self.totals["candidate"]
        if calls < policy["min_predictions"]:
            return
        reasons = []
        if errors / float(calls) > policy["max_error_rate"]:
            reasons.append(
                "error rate %.3f > %s (%d of %d predictions failed or were not finite)"
                % (errors / float(calls), policy["max_error_rate"], errors, calls)
            )
        if compared and agreed / float(compared) < policy["min_agreement"]:
            reasons.append(
                "agreement with the active version %.3f < %s"
                % (agreed / float(compared), policy["min_agreement"])
            )
        cand, act = self.stats["candidate"].p95(), self.stats["active"].p95()
        if cand is not None and act and cand / act > policy["max_p95_latency_ratio"]:
            reasons.append(
                "p95 latency %.3g ms is %.2fx the active version's (> %s)"
                % (cand, cand / act, policy["max_p95_latency_ratio"])
            )
        if reasons:
            self.close()
            self.rolled_back = "; ".join(reasons)
            abort_canary(self.root, self.rolled_back, log=lambda line: None)
            self.candidate = None

    def _record(self, role):
        stats = self.stats[role]
        if stats is None or not stats.calls:
            return
        active_manifest = self.root / "versions" / self.active_folder / MANIFEST_NAME
        entry = {
            "t": int(_fleet_time.time()),
            "role": role,
            "version": stats.version,
            "manifest_sha256": stats.manifest_sha256,
            "calls": stats.calls,
            "errors": stats.errors,
            "compared": stats.compared,
            "agreed": stats.agreed,
            "latency_sum_ms": round(stats.total_ms, 3),
            "latency_buckets": stats.buckets,
            "staleness_s": int(_fleet_time.time() - os.stat(str(active_manifest)).st_mtime),
        }
        append_telemetry(self.root, entry)
        self.stats[role] = VersionStats(stats.version, stats.manifest_sha256)

    def close(self):
        """Write what was measured since the last record (call before exit)."""
        for role in ("active", "candidate"):
            self._record(role)


def open_root(root, device_id=None, public_key=None, seed=None):
    """The model an application uses on a device: `loader.open_root("/opt/models").predict(x)`.
    device_id: route this device wholly to the candidate or not (by a stable hash), instead of
    routing each call; seed: repeatable per-call routing (tests)."""
    return FleetModel(root, device_id, public_key, seed)


def _finite(outputs):
    np = _numpy()
    for value in outputs.values():
        array = np.asarray(value)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            return False
    return True


def _agree(reference, output):
    """Same top class on class-score outputs (last axis > 1), within 10% elsewhere, for every output."""
    np = _numpy()
    for name, ref in reference.items():
        ref, got = np.asarray(ref, dtype=np.float64), np.asarray(output.get(name), dtype=np.float64)
        if ref.shape != got.shape:
            return 0
        if ref.ndim >= 1 and ref.shape[-1] > 1:
            if not (ref.argmax(-1) == got.argmax(-1)).all():
                return 0
        elif not np.allclose(got, ref, rtol=0.1, atol=1e-6):
            return 0
    return 1


def append_telemetry(root, entry):
    """Append one JSON line to root/telemetry/telemetry.jsonl, rotating it at TELEMETRY_MAX_BYTES
    (one older file is kept): bounded on disk, whatever the link's downtime."""
    folder = Path(root) / TELEMETRY_DIR
    if not folder.is_dir():
        folder.mkdir()
    path = folder / TELEMETRY_FILE
    if path.exists() and path.stat().st_size > TELEMETRY_MAX_BYTES:
        os.replace(str(path), str(folder / (TELEMETRY_FILE + ".1")))
    with open(str(path), "a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def prometheus_metrics(root):
    """The telemetry files summed per version, in Prometheus' text format."""
    folder = Path(root) / TELEMETRY_DIR
    totals = {}
    for name in (TELEMETRY_FILE + ".1", TELEMETRY_FILE):
        path = folder / name
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                key = (str(entry["version"]), str(entry["role"]))
                into = totals.setdefault(
                    key,
                    {
                        "calls": 0,
                        "errors": 0,
                        "compared": 0,
                        "agreed": 0,
                        "sum": 0.0,
                        "buckets": [0] * (len(LATENCY_BUCKETS_MS) + 1),
                        "staleness": 0,
                    },
                )
                for field in ("calls", "errors", "compared", "agreed"):
                    into[field] += int(entry[field])
                into["sum"] += float(entry["latency_sum_ms"])
                into["buckets"] = [a + int(b) for a, b in zip(into["buckets"], entry["latency_buckets"])]
                into["staleness"] = int(entry["staleness_s"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a power cut
    out = [
        "# TYPE edgebuild_predictions_total counter",
        "# TYPE edgebuild_prediction_errors_total counter",
        "# TYPE edgebuild_agreement_ratio gauge",
        "# TYPE edgebuild_latency_ms histogram",
        "# TYPE edgebuild_model_staleness_seconds gauge",
    ]
    for (version, role), data in sorted(totals.items()):
        labels = 'version="%s",role="%s"' % (version.replace('"', ""), role)
        out.append("edgebuild_predictions_total{%s} %d" % (labels, data["calls"]))
        out.append("edgebuild_prediction_errors_total{%s} %d" % (labels, data["errors"]))
        if data["compared"]:
            out.append(
                "edgebuild_agreement_ratio{%s} %.6f" % (labels, data["agreed"] / float(data["compared"]))
            )
        running = 0
        for bound, count in zip(LATENCY_BUCKETS_MS + ("+Inf",), data["buckets"]):
            running += count
            out.append('edgebuild_latency_ms_bucket{%s,le="%s"} %d' % (labels, bound, running))
        out.append("edgebuild_latency_ms_sum{%s} %.3f" % (labels, data["sum"]))
        out.append("edgebuild_latency_ms_count{%s} %d" % (labels, data["calls"]))
        out.append("edgebuild_model_staleness_seconds{%s} %d" % (labels, data["staleness"]))
    return "\n".join(out) + "\n"


def deployment_policy(path, public_key, target):
    """The rollback thresholds for `target` from a signed, unexpired deployment.json."""
    path = Path(path)
    if public_key is None:
        raise BundleRejected("--deployment needs --key: the deployment manifest is only worth its signature")
    doc = read_signed_json(path, public_key, "the deployment manifest")
    try:
        rollback = doc["targets"][target]["rollback"]
    except (KeyError, TypeError):
        rollback = None
    if not isinstance(rollback, dict):
        raise BundleRejected("%s has no rollback policy for target %s" % (path.name, target))
    return dict((key, rollback[key]) for key in DEFAULT_POLICY if isinstance(rollback.get(key), (int, float)))

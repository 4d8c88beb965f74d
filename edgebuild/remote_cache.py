"""A client for the HTTP cache protocol Bazel uses, so bazel-remote, nginx with WebDAV PUT and
similar servers can serve as edgebuild's shared cache.

The protocol is two key spaces under one base URL:
  GET/PUT <base>/ac/<action key>   the action-cache entry (the same JSON bytes as the local entry file)
  GET/PUT <base>/cas/<sha256>      a content blob, named by the sha256 of its bytes
A GET answers 200 with the value or 404 when absent; a PUT answers 200, 201 or 204.

Only the standard library is used. Every download is checked against its sha256 before it is
renamed into place, so a corrupted or truncated blob never counts. The server is not trusted with
sizes either: an action entry may be at most MAX_ENTRY_BYTES, a blob at most the size its entry
declares and never more than `max_bytes` ($EDGEBUILD_REMOTE_CACHE_MAX_MB, default 16 GiB); a
longer answer is cut off unread, and an error page is never read past DRAIN_LIMIT. Network errors, timeouts and
5xx answers are retried with exponential backoff; when the retries run out, or the server refuses
us (401/403), `RemoteUnavailable` is raised and the caller decides how to build without it.

    remote = HttpCache("http://cache.local:8080")
    remote.put_blob(digest, path)            # upload a file under its sha256
    if remote.get_blob(digest, dest):         # False: the server has no such blob
        ...                                   # dest now holds exactly the blob (verified)
    data = remote.get_action(key)             # bytes or None

One HttpCache may be shared by threads: each thread keeps its own keep-alive connection.
http.client is imported on the first request: a build whose cache hits locally never pays for it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from edgebuild.errors import ConfigError

if TYPE_CHECKING:
    import http.client

HEADER_ENV = "EDGEBUILD_REMOTE_CACHE_HEADER"
MAX_MB_ENV = "EDGEBUILD_REMOTE_CACHE_MAX_MB"
DEFAULT_MAX_MB = 16 * 1024
MAX_ENTRY_BYTES = 16 * 1024 * 1024
DRAIN_LIMIT = 64 * 1024  # bytes read from an answer we do not use before the connection is dropped
CHUNK = 1024 * 1024
_KEY = re.compile(r"^[0-9A-Za-z_-]{1,128}$")  # keys become URL path segments: nothing else allowed
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class RemoteCacheError(Exception):
    """Base of the remote cache's errors."""


class RemoteUnavailable(RemoteCacheError):
    """The server cannot be used now: unreachable, timing out, failing or refusing our credentials.
    `url` is the base URL, `reason` a short human-readable cause."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"remote cache {url} unavailable: {reason}")
        self.url, self.reason = url, reason


class BlobCorrupted(RemoteCacheError):
    """The server sent bytes whose sha256 is not the digest asked for (nothing was written)."""

    def __init__(self, url: str, digest: str, actual: str) -> None:
        super().__init__(
            f"remote cache {url}: blob {digest[:12]} is corrupted (its content hashes to {actual[:12]})"
        )
        self.url, self.digest, self.actual = url, digest, actual


class ResponseTooLarge(RemoteCacheError):
    """The server sent (or announced) more bytes than allowed (nothing was written)."""

    def __init__(self, url: str, what: str, limit: int) -> None:
        super().__init__(f"remote cache {url}: {what} is larger than the {limit} bytes allowed")
        self.url, self.limit = url, limit


class _Retry(Exception):
    """Internal: a failure worth another attempt."""


class HttpCache:
    """Bazel-style HTTP cache client.

    url:      base URL, http:// or https://, optionally with a path prefix and user:password
              (sent as HTTP basic auth).
    header:   one extra request header "Name: value" (e.g. "Authorization: Bearer T"); by default
              read from $EDGEBUILD_REMOTE_CACHE_HEADER.
    timeout:  seconds for connecting and for each socket read or write (not the whole transfer).
    retries:  further attempts after a network error, timeout or 5xx/408/429 answer; the waits
              between them are backoff, 2*backoff, 4*backoff... seconds.
    max_bytes: the largest blob (and the most bytes one action entry may name) accepted; by default
              $EDGEBUILD_REMOTE_CACHE_MAX_MB megabytes, else 16 GiB.
    Raises ConfigError for a malformed URL, header or limit; nothing touches the network until a call.
    """

    def __init__(
        self,
        url: str,
        header: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.25,
        max_bytes: int | None = None,
    ) -> None:
        problem = url_problem(url)
        if problem:
            raise ConfigError(problem)
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
        self.url = urllib.parse.urlunsplit(
            (parsed.scheme, parsed.netloc.rpartition("@")[2], parsed.path.rstrip("/"), "", "")
        )
        self._https = parsed.scheme == "https"
        self._host, self._port = parsed.hostname, port
        self._prefix = parsed.path.rstrip("/")
        self._headers = {"User-Agent": "edgebuild-remote-cache"}
        if parsed.username is not None:
            creds = f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
        header = os.environ.get(HEADER_ENV) if header is None else header
        if header:
            name, sep, value = header.partition(":")
            if not sep or not name.strip() or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name.strip()):
                raise ConfigError(
                    f"{HEADER_ENV} must look like 'Name: value' (e.g. 'Authorization: Bearer TOKEN')"
                )
            self._headers[name.strip()] = value.strip()
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_bytes = max_bytes if max_bytes is not None else _max_bytes_from_env()
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.counters = {
            "ac_hits": 0,
            "ac_misses": 0,
            "ac_puts": 0,
            "blobs_down": 0,
            "bytes_down": 0,
            "blobs_up": 0,
            "bytes_up": 0,
        }

    # --- the action cache --------------------------------------------------------------------------

    def get_action(self, key: str) -> bytes | None:
        """The action-cache entry stored under `key`, or None when the server has none."""

        def read(resp: http.client.HTTPResponse) -> bytes:
            self._check_length(resp, "an action entry", MAX_ENTRY_BYTES)
            data = resp.read(MAX_ENTRY_BYTES + 1)
            if len(data) > MAX_ENTRY_BYTES:
                raise ResponseTooLarge(self.url, f"action entry {key[:12]}", MAX_ENTRY_BYTES)
            return data

        data = self._request("GET", self._path("ac", key), on_ok=read)
        self._count("ac_hits" if data is not None else "ac_misses")
        return data

    def put_action(self, key: str, data: bytes) -> None:
        """Store `data` as the action-cache entry for `key` (replacing any earlier one)."""
        self._request("PUT", self._path("ac", key), body=lambda: data, size=len(data))
        self._count("ac_puts")

    # --- the content store -------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """Whether the server holds a blob under `digest` (a HEAD request; its content is not checked)."""
        return self._request("HEAD", self._path("cas", digest), on_ok=lambda resp: True) is not None

    def get_blob(self, digest: str, dest: Path, mode: int = 0o644, max_bytes: int | None = None) -> bool:
        """Download the blob `digest` to `dest` (created atomically, with `mode`); False when the
        server has none. The bytes stream to a temp file beside `dest` and are renamed into place
        only when their sha256 equals `digest`; otherwise BlobCorrupted is raised and `dest` is
        left untouched. More than `max_bytes` (default self.max_bytes) raises ResponseTooLarge as
        soon as it shows. A transfer cut short is retried like any network error."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)

        def save(resp: http.client.HTTPResponse) -> str:
            self._check_length(resp, f"blob {digest[:12]}", limit)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:16]}.", suffix=".part", dir=dest.parent)
            try:
                hasher, size = hashlib.sha256(), 0
                with os.fdopen(fd, "wb") as fh:
                    while chunk := resp.read(min(CHUNK, limit - size + 1)):
                        size += len(chunk)
                        if size > limit:
                            raise ResponseTooLarge(self.url, f"blob {digest[:12]}", limit)
                        hasher.update(chunk)
                        fh.write(chunk)
                actual = hasher.hexdigest()
                if actual != digest:
                    raise BlobCorrupted(self.url, digest, actual)
                os.chmod(tmp, mode)
                os.replace(tmp, dest)
                self._count("blobs_down", "bytes_down", size)
                return actual
            except BaseException:
                _unlink_quietly(tmp)
                raise

        return self._request("GET", self._path("cas", digest), on_ok=save) is not None

    def put_blob(self, digest: str, path: Path) -> None:
        """Upload the file at `path` as blob `digest`, streaming it (the caller vouches that
        `digest` is its sha256). Always sent, so a corrupted copy on the server is replaced."""
        path = Path(path)
        size = path.stat().st_size
        self._request("PUT", self._path("cas", digest), body=lambda: open(path, "rb"), size=size)
        self._count("blobs_up", "bytes_up", size)

    # --- HTTP ----------------------------------------------------------------------------------

    def _check_length(self, resp: http.client.HTTPResponse, what: str, limit: int) -> None:
        """Refuse an announced Content-Length over `limit` before reading any of the body."""
        length = resp.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise ResponseTooLarge(self.url, what, limit)

    def _drain(self, resp: http.client.HTTPResponse) -> None:
        """Read the rest of an answer so its connection can be reused; a long one is not read
        (whatever the server sends): the connection is dropped instead."""
        if len(resp.read(DRAIN_LIMIT + 1)) > DRAIN_LIMIT:
            self._drop_connection()

    def _path(self, space: str, key: str) -> str:
        if not _KEY.match(key):
            raise ValueError(f"not a cache key: {key!r}")
        return f"{self._prefix}/{space}/{key}"

    def _request(self, method: str, path: str, on_ok=None, body=None, size: int = 0):
        """Send one request with retries. Returns on_ok(response) for a 2xx answer (None when
        on_ok is None), None for a 404; raises RemoteUnavailable otherwise."""
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                try:
                    return self._attempt(method, path, on_ok, body, size, fresh=False)
                except _ReusedConnectionDropped:
                    # an idle keep-alive connection the server had closed: reconnect at once
                    return self._attempt(method, path, on_ok, body, size, fresh=True)
            except _Retry as exc:
                reason = str(exc)
        raise RemoteUnavailable(self.url, f"{reason} (after {self.retries + 1} attempts)")

    def _attempt(self, method: str, path: str, on_ok, body, size: int, fresh: bool):
        import http.client
        import ssl

        network_errors = (TimeoutError, ConnectionError, http.client.HTTPException, ssl.SSLError)
        conn, reused = self._connection(fresh)
        headers = dict(self._headers)
        payload = None
        try:
            if body is not None:
                headers["Content-Length"] = str(size)
                payload = body()
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:  # connecting or sending
            self._drop_connection()
            if reused and isinstance(
                exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
            ):
                raise _ReusedConnectionDropped() from exc
            raise _Retry(_describe(exc)) from exc
        finally:
            if hasattr(payload, "close"):
                payload.close()
        try:
            if 200 <= resp.status < 300:
                result = on_ok(resp) if on_ok is not None else None
                self._drain(resp)  # so the connection can be reused
                return result
            self._drain(resp)
            if resp.status == 404:
                return None
            reason = f"HTTP {resp.status} {resp.reason} on {method} {path}"
            if resp.status in _RETRY_STATUS:
                raise _Retry(reason)
            raise RemoteUnavailable(self.url, reason)
        except network_errors as exc:  # cut off while receiving the body (local disk errors propagate)
            self._drop_connection()
            raise _Retry(_describe(exc)) from exc
        except BaseException:
            self._drop_connection()  # the response may be half read
            raise
        finally:
            if resp.will_close:
                self._drop_connection()

    def _connection(self, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        import http.client

        conn = None if fresh else getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout, blocksize=CHUNK)
        self._local.conn = conn
        return conn, False

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._drop_connection()

    def _count(self, name: str, bytes_name: str | None = None, size: int = 0) -> None:
        with self._count_lock:
            self.counters[name] += 1
            if bytes_name:
                self.counters[bytes_name] += size


def url_problem(url: str) -> str | None:
    """What is wrong with a remote cache URL, or None (the URL is shown without its password)."""
    parsed = urllib.parse.urlsplit(url)
    shown = _without_password(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"remote cache URL must look like http://HOST[:PORT][/PATH], got '{shown}'"
    try:
        _ = parsed.port  # parsing it raises ValueError for a bad port
    except ValueError:
        return f"remote cache URL has a bad port: '{shown}'"
    if parsed.query or parsed.fragment:
        return f"remote cache URL must not have a query or fragment: '{shown}'"
    return None


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def _max_bytes_from_env() -> int:
    value = os.environ.get(MAX_MB_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_MB * 1024 * 1024
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"{MAX_MB_ENV} must be a whole number of megabytes (at least 1), got '{value[:40]}'"
        )
    return int(value) * 1024 * 1024


class _ReusedConnectionDropped(Exception):
    """Internal: a kept-alive connection turned out to be closed by the server."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

"""What the live providers share: an HTTP client with timeouts, retries, an on-disk cache and redaction.

Every failure becomes a `ProviderError` whose short `reason` ("timeout", "HTTP 503", "malformed
response: ...") is safe to put on a record: secrets given to the client are redacted from it. The cache
key is built from the URL and the query parameters only, never from headers, so no key reaches disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from wattprint.errors import ProviderError
from wattprint.redact import redact

log = logging.getLogger("wattprint.intensity")

#: HTTP statuses worth another try: rate limit and server-side trouble
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 5.0


def default_cache_dir() -> Path:
    """WATTPRINT_HOME/cache (default ~/.wattprint/cache); created on first write only."""
    home = os.environ.get("WATTPRINT_HOME") or "~/.wattprint"
    return Path(home).expanduser() / "cache"


class HttpClient:
    """GET JSON with a timeout, a few retries with exponential back-off, and an on-disk TTL cache."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        cache_dir: Path | str | None = None,
        namespace: str = "http",
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.cache_dir = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / namespace
        self.secrets: list[str] = [s for s in secrets if s]
        self._client: httpx.Client | None = None

    def add_secret(self, secret: str | None) -> None:
        """Redact `secret` (a token obtained at run time) from every later error text."""
        if secret and secret not in self.secrets:
            self.secrets.append(secret)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout_s, follow_redirects=True)
        return self._client

    # -- cache -----------------------------------------------------------------------------------
    def _cache_path(self, url: str, params: Mapping[str, Any] | None) -> Path:
        key = json.dumps([url, sorted((str(k), str(v)) for k, v in (params or {}).items())])
        return self.cache_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def _cache_get(self, path: Path, ttl_s: float) -> Any | None:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if time.time() - float(entry["fetched_at"]) <= ttl_s:
                return entry["body"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no entry, or a corrupt one: fetch again
        return None

    def _cache_put(self, path: Path, body: Any) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"fetched_at": time.time(), "body": body}, f)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only home must not fail the run
            log.debug("intensity cache not written: %s", redact(str(exc), self.secrets))

    # -- requests --------------------------------------------------------------------------------
    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        cache_ttl_s: float = 0.0,
    ) -> Any:
        """Parsed JSON body of GET base_url + path; raises `ProviderError` for any failure."""
        url = self.base_url + path
        cache_path = self._cache_path(url, params) if cache_ttl_s > 0 else None
        if cache_path is not None and (cached := self._cache_get(cache_path, cache_ttl_s)) is not None:
            return cached
        response = self._request(url, params, headers, auth)
        try:
            body = response.json()
        except ValueError:
            raise ProviderError("malformed response: body is not JSON") from None
        if cache_path is not None:
            if self._holds_secret(body, headers, auth):  # a server echoing the key: nothing goes to disk
                log.debug("intensity response not cached: it contains a credential")
            else:
                self._cache_put(cache_path, body)
        return body

    def _holds_secret(self, body: Any, headers: Mapping[str, str] | None, auth: tuple[str, str] | None) -> bool:
        """Whether a string of the response (key or value, as received) contains a known secret, a header
        value or a credential sent with this request; values shorter than 4 characters are too common to
        tell (the rule `redact` follows)."""
        sent = [s for s in (*self.secrets, *(headers or {}).values(), *(auth or ())) if s and len(s) >= 4]
        return bool(sent) and any(secret in text for text in _strings(body) for secret in sent)

    def _request(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
    ) -> httpx.Response:
        reason = "no attempt"
        for attempt in range(self.retries + 1):
            wait = self.backoff_s * (2**attempt)
            try:
                response = self._http().get(url, params=params, headers=headers, auth=auth)
            except httpx.TimeoutException:
                reason = f"timeout after {self.timeout_s:g} s"
            except httpx.HTTPError as exc:
                reason = redact(f"connection failed ({type(exc).__name__})", self.secrets)
            else:
                if response.status_code < 400:
                    return response
                reason = f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUSES:
                    raise ProviderError(reason)
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = min(float(retry_after), MAX_RETRY_AFTER_S)
            if attempt < self.retries:
                time.sleep(wait)
        tries = self.retries + 1
        raise ProviderError(f"{reason} ({tries} attempt{'s' if tries > 1 else ''})")


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)

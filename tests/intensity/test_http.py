"""HttpClient against the loopback server: retries, back-off, timeouts, cache, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.intensity.fakeserver import FakeServer, Reply
from wattprint.errors import ProviderError
from wattprint.intensity.http import HttpClient, default_cache_dir
from wattprint.redact import redact


def client(server: FakeServer, tmp_path: Path, **kw: object) -> HttpClient:
    opts: dict = {"timeout_s": 0.2, "retries": 2, "backoff_s": 0.01, "cache_dir": tmp_path / "cache"}
    opts.update(kw)
    return HttpClient(server.url, **opts)


def test_retries_server_errors_and_rate_limits_then_succeeds(server: FakeServer, tmp_path: Path) -> None:
    server.routes["/x"] = [Reply(500), Reply(429, headers={"Retry-After": "0"}), Reply.json({"ok": 1})]
    assert client(server, tmp_path).get_json("/x") == {"ok": 1}
    assert server.paths() == ["/x"] * 3


def test_gives_up_after_the_retries_with_a_short_reason(server: FakeServer, tmp_path: Path) -> None:
    server.routes["/x"] = Reply(503)
    with pytest.raises(ProviderError) as info:
        client(server, tmp_path).get_json("/x")
    assert info.value.reason == "HTTP 503 (3 attempts)" and len(server.requests) == 3


def test_client_errors_are_not_retried(server: FakeServer, tmp_path: Path) -> None:
    server.routes["/x"] = Reply(404)
    with pytest.raises(ProviderError, match="^HTTP 404$"):
        client(server, tmp_path).get_json("/x")
    assert len(server.requests) == 1


def test_timeout_and_malformed_body(server: FakeServer, tmp_path: Path) -> None:
    server.routes["/slow"] = Reply(200, b"{}", delay_s=1.0)
    server.routes["/bad"] = Reply(200, b'{"data": [1, 2')
    c = client(server, tmp_path, retries=1)
    with pytest.raises(ProviderError, match=r"timeout after 0.2 s \(2 attempts\)"):
        c.get_json("/slow")
    with pytest.raises(ProviderError, match="malformed response: body is not JSON") as info:
        c.get_json("/bad")
    assert info.value.__cause__ is None


def test_connection_refused(tmp_path: Path) -> None:
    c = HttpClient("http://127.0.0.1:9", timeout_s=0.2, retries=0, cache_dir=tmp_path)
    with pytest.raises(ProviderError, match="connection failed"):
        c.get_json("/x")


def test_cache_serves_repeats_and_never_stores_headers(server: FakeServer, tmp_path: Path) -> None:
    server.routes["/x"] = Reply.json({"v": 1})
    c = client(server, tmp_path)
    headers = {"auth-token": "SECRET-KEY-123"}
    assert c.get_json("/x", {"zone": "DE"}, headers=headers, cache_ttl_s=60) == {"v": 1}
    assert c.get_json("/x", {"zone": "DE"}, headers=headers, cache_ttl_s=60) == {"v": 1}
    assert len(server.requests) == 1
    c.get_json("/x", {"zone": "FR"}, headers=headers, cache_ttl_s=60)
    c.get_json("/x", {"zone": "DE"}, headers=headers)  # ttl 0: no cache
    assert len(server.requests) == 3
    files = list((tmp_path / "cache" / "http").glob("*.json"))
    assert len(files) == 2
    for f in files:
        assert "SECRET-KEY-123" not in f.read_text() and "body" in json.loads(f.read_text())
        f.write_text("{corrupt")
    assert c.get_json("/x", {"zone": "DE"}, cache_ttl_s=60) == {"v": 1}  # corrupt entry: fetched again
    assert len(server.requests) == 4


def test_default_cache_dir_is_under_wattprint_home(wattprint_env: Path) -> None:
    assert default_cache_dir() == wattprint_env / "cache"


def test_redact() -> None:
    assert redact("token abcdef in abcdef", ["abcdef", None, "ab"]) == "token *** in ***"


def test_a_response_echoing_the_credential_is_never_cached(server: FakeServer, tmp_path: Path) -> None:
    server.routes["/echo"] = Reply.json({"v": 1, "you_sent": "SECRET-KEY-123"})
    server.routes["/login"] = Reply.json({"token": "TOKEN-ABCDEFGH"})
    c = client(server, tmp_path, secrets=["SECRET-KEY-123"])
    assert c.get_json("/echo", headers={"auth-token": "SECRET-KEY-123"}, cache_ttl_s=60)["v"] == 1
    assert c.get_json("/login", auth=("user", "TOKEN-ABCDEFGH"), cache_ttl_s=60)["token"] == "TOKEN-ABCDEFGH"
    assert not list((tmp_path / "cache").rglob("*.json"))  # neither went to disk
    c.get_json("/echo", headers={"auth-token": "SECRET-KEY-123"}, cache_ttl_s=60)
    assert server.paths().count("/echo") == 2  # so it is fetched again, not served from a file

"""A loopback HTTP server serving recorded API responses, errors, slow and malformed bodies.

Never contacts the network: it listens on 127.0.0.1, on a port the OS chooses.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).parent / "data"
#: client settings that keep failing tests fast
FAST = {"timeout_s": 0.2, "retries": 1, "backoff_s": 0.01}


@dataclass
class Reply:
    """What the server answers on one path: a status, a body, headers, after a delay."""

    status: int = 200
    body: bytes = b"{}"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fixture(cls, name: str, status: int = 200) -> Reply:
        return cls(status, (DATA / name).read_bytes())

    @classmethod
    def json(cls, obj: object, status: int = 200) -> Reply:
        return cls(status, json.dumps(obj).encode())


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeServer:
    """Routes: exact path -> Reply or a list of Replies served in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply | list[Reply]] = {}
        self.prefixes: dict[str, Reply] = {}
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append(Seen(self.command, url.path, parse_qs(url.query), headers))
                reply = server.reply_for(url.path)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout test)

            do_GET = do_PUT = _serve

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def reply_for(self, path: str) -> Reply:
        found = self.routes.get(path)
        if found is None:
            for prefix, reply in self.prefixes.items():
                if path.startswith(prefix):
                    return reply
            return Reply(404, b'{"error": "not found"}')
        if isinstance(found, list):
            return found.pop(0) if len(found) > 1 else found[0]
        return found

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

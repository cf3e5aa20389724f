"""`wattprint ui`: serve the stored runs as a local dashboard (read-only, loopback by default)."""

from __future__ import annotations

import sys
import threading

import typer

from wattprint.cli.common import fail


def ui(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. Anything but loopback exposes "
        "your runs to the network and must be asked for explicitly.",
    ),
    port: int = typer.Option(8765, "--port", help="TCP port (0 picks a free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a web browser."),
    db: str = typer.Option(None, "--db", help="Store URL (default: WATTPRINT_DB or SQLite in WATTPRINT_HOME)."),
) -> None:
    """Serve the runs in the store on a local web dashboard until Ctrl-C."""
    from wattprint._extras import MissingExtraError, require
    from wattprint.config import load_settings
    from wattprint.ui.app import create_app
    from wattprint.ui.server import bind, is_loopback, serve, url_of

    try:
        for module in ("starlette", "uvicorn", "jinja2", "matplotlib"):
            require(module, extra="ui", feature="the dashboard")
    except MissingExtraError as exc:
        fail("ui", str(exc))

    if not host.strip():
        fail("--host", "empty address; expected e.g. 127.0.0.1")
    db_url = load_settings(db=db).db_url
    from wattprint.store import open_store

    with open_store(db_url) as store:  # a bad URL or unreachable database fails here, before binding
        count = len(store.list())
        where = store.url
    loopback = is_loopback(host)
    sock = bind(host, port)
    url = url_of(sock)
    if not loopback:
        print(
            f"wattprint ui: warning: listening on {host}, reachable from other machines: anyone who can connect "
            "can read your runs (names, commands, hosts, metrics). Use --host 127.0.0.1 to keep it local.",
            file=sys.stderr,
            flush=True,
        )
    print(f"wattprint ui: serving {count} run(s) from {where} at {url} (Ctrl-C to stop)", flush=True)
    if not no_browser:
        import webbrowser

        browse = url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
        threading.Timer(0.5, lambda: webbrowser.open(browse)).start()
    serve(create_app(db_url, loopback_only=loopback), sock)

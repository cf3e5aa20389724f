"""EnergyMiddleware around a real Starlette app served by uvicorn in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net import free_port

pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

APP = Path(__file__).with_name("asgi_app.py")
REPO = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), str(self.port)], env=full_env, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/metrics", timeout=1).status_code == 200:  # not a counted request
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else "died"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)

    def stop(self) -> tuple[dict, str]:
        """SIGTERM: uvicorn's lifespan shutdown, where the middleware stores its final record; that record."""
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=30)
        from wattprint.config import load_settings
        from wattprint.store import open_store

        settings = load_settings()
        spooled = sorted((settings.home / "unsaved").glob("*.json"))
        if spooled:  # the store was unreachable: the record waits in the spool for the next run
            return json.loads(spooled[0].read_text()), stderr
        with open_store(settings.db_url) as store:
            (record,) = store.list(name="asgi-test")
        return record.model_dump(mode="json"), stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()


def _metrics(url: str) -> dict[str, float]:
    """Prometheus text as {'name{labels}': value}."""
    out = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


async def _burst(url: str, paths: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(paths))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return list(await asyncio.gather(*(client.get(f"{url}{p}") for p in paths)))


@pytest.mark.slow
def test_200_concurrent_requests_each_get_a_figure_and_all_are_counted(server: Server) -> None:
    paths = ["/light", "/heavy", "/items/7", "/items/8"] * 50
    responses = asyncio.run(_burst(server.url, paths))
    assert [r.status_code for r in responses] == [200] * 200
    figures = [float(r.headers["x-wattprint-energy-j"]) for r in responses]  # every one has its header
    assert all(f >= 0 for f in figures) and sum(figures) > 0
    time.sleep(0.3)  # a figure is final at the first slice after its request ended (slices of 0.05 s here)
    metrics = _metrics(server.url)
    counted = {k: v for k, v in metrics.items() if k.startswith("wattprint_requests_total")}
    assert counted == {
        'wattprint_requests_total{route="/light"}': 50.0,
        'wattprint_requests_total{route="/heavy"}': 50.0,
        'wattprint_requests_total{route="/items/{item_id}"}': 100.0,  # the path template, not 100 paths
    }
    assert metrics['wattprint_request_tokens_total{route="/heavy"}'] == 50 * 12
    assert metrics['wattprint_request_energy_joules_per_request_count{route="/light"}'] == 50
    record, _ = server.stop()
    serving = record["bench"]["serving"]
    routes = serving["routes"]
    assert sum(r["requests"] for r in routes.values()) == 200  # the metrics requests are not counted
    charged = sum(r["energy_j"] for r in routes.values())
    assert charged + serving["unattributed_j"] == pytest.approx(serving["sliced_j"], rel=1e-6)
    assert charged > 0.5 * serving["sliced_j"]  # busy serving most of the time
    assert record["status"] == "finished" and record["name"] == "asgi-test"


def test_under_steady_load_a_route_doing_4x_the_work_gets_3_to_5x_the_energy(server: Server) -> None:
    async def loop(client: httpx.AsyncClient, path: str, count: int) -> None:
        for _ in range(count):
            assert (await client.get(f"{server.url}{path}")).status_code == 200

    async def load() -> None:  # two clients, each always waiting on one request: no slice without a request
        async with httpx.AsyncClient(timeout=60) as client:
            await asyncio.gather(loop(client, "/light", 64), loop(client, "/heavy", 16))

    asyncio.run(load())
    record, _ = server.stop()
    routes = record["bench"]["serving"]["routes"]
    per_request = {path: routes[path]["energy_j"] / routes[path]["requests"] for path in ("/light", "/heavy")}
    assert 3.0 <= per_request["/heavy"] / per_request["/light"] <= 5.0, per_request


def test_the_server_keeps_serving_when_the_store_is_unreachable(tmp_path: Path) -> None:
    env = {"WATTPRINT_DB": f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"}
    srv = Server(tmp_path, env)
    try:
        responses = asyncio.run(_burst(srv.url, ["/light"] * 20))
        assert [r.status_code for r in responses] == [200] * 20
        assert all("x-wattprint-energy-j" in r.headers for r in responses)
        record, stderr = srv.stop()
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    assert "store" in record["degraded"]  # flagged on the record, which waits in the unsaved spool
    assert record["bench"]["serving"]["routes"]["/light"]["requests"] == 20
    assert "run store unavailable" in stderr


def test_bad_arguments() -> None:
    from wattprint.errors import WattprintInputError
    from wattprint.integrations.asgi import EnergyMiddleware

    with pytest.raises(WattprintInputError, match="slice_s"):
        EnergyMiddleware(lambda *a: None, slice_s=0)  # type: ignore[arg-type]
    with pytest.raises(WattprintInputError, match="metrics_path"):
        EnergyMiddleware(lambda *a: None, metrics_path="metrics")  # type: ignore[arg-type]


def _in_process(app, paths: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [(await client.get(p)).status_code for p in paths]

    return asyncio.run(go())


def test_unmatched_paths_share_one_label_and_a_failing_route_of_still_ends_the_request() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from wattprint.integrations.asgi import EnergyMiddleware

    async def ok(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/ok", ok)])
    mw = EnergyMiddleware(app, slice_s=0.05)
    statuses = _in_process(mw, ["/ok"] + [f"/scan/{i}" for i in range(30)])
    assert statuses == [200] + [404] * 30
    record = mw.close()
    routes = record.bench["serving"]["routes"]
    assert sorted(routes) == ["/ok", "<not found>"]  # one label for 30 scanned paths, not 30 series
    assert routes["/ok"]["requests"] == 1 and routes["<not found>"]["requests"] == 30

    def broken(scope):  # type: ignore[no-untyped-def]
        raise KeyError("no route")

    mw = EnergyMiddleware(app, slice_s=0.05, route_of=broken)
    assert _in_process(mw, ["/ok"] * 5) == [200] * 5  # served regardless
    assert mw._slicer is not None and mw._slicer.in_flight() == 0  # every request ended: none takes later slices
    record = mw.close()
    assert "asgi" in record.degraded and record.bench["serving"]["routes"]["<unknown>"]["requests"] == 5

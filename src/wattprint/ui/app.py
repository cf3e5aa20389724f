"""The dashboard's web app (Starlette): runs list with filters, a run's page, comparisons, JSON.

Read-only: every route is a GET that reads the store; pages are the report pages (report.html) with
a navigation bar, so the dashboard and a saved report show the same figures. Bound to loopback, the
app also refuses requests whose Host header is not a loopback name (against DNS rebinding).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wattprint._extras import require
from wattprint.errors import WattprintInputError
from wattprint.record import STATUSES, RunRecord
from wattprint.report.query import RunFilter, select_runs
from wattprint.report.values import energy_method, fmt_energy, fmt_mass, fmt_metric, metric_value, model_name, sig
from wattprint.ui.cache import RunsCache

log = logging.getLogger("wattprint")

TEMPLATES = Path(__file__).parent / "templates"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_COMPARE = 50


def _row(record: RunRecord, metric: str) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "href": f"/runs/{quote(record.run_id, safe='')}",
        "model": model_name(record),
        "name": record.name,
        "status": record.status,
        "started": record.started_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "duration": f"{sig(record.duration_s)} s",
        "energy": fmt_energy(record.energy_kwh.total),
        "co2e": fmt_mass(record.co2e_kg.total),
        "region": record.region,
        "method": energy_method(record),
        "metric": fmt_metric(metric_value(record, metric)),
    }


def create_app(db_url: str, *, loopback_only: bool = True, check_every_s: float | None = None) -> Any:
    """The dashboard over the store at `db_url`, opened once for the app's lifetime; `check_every_s` is how
    often it asks the store whether runs changed (default `ui.cache.CHECK_EVERY_S`)."""
    require("starlette", extra="ui", feature="the dashboard")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from wattprint.report.html import comparison_html, environment, run_html
    from wattprint.store import open_store

    env = environment(TEMPLATES)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.store = open_store(db_url, read_only=True)  # the dashboard never writes
        app.state.cache = (
            RunsCache(app.state.store)
            if check_every_s is None
            else RunsCache(app.state.store, check_every_s=check_every_s)
        )
        try:
            try:
                app.state.cache.records()  # read the runs once now, not in the first request of a burst
            except Exception as exc:  # a bad row must not keep the app from starting: the pages say so
                log.error("wattprint ui: could not read the runs at start: %s", exc)
            yield
        finally:
            app.state.store.close()

    def page_key(request: Request, run_filter: RunFilter, metric: str) -> str:
        """The parameters that shape a runs page, normalised: other parameters make no new cache entry."""
        return repr((run_filter, metric, request.query_params.get("since", ""), request.query_params.get("until", "")))

    def store(request: Request) -> Any:
        return request.app.state.store

    def cache(request: Request) -> RunsCache:
        return request.app.state.cache

    def error_page(status: int, message: str) -> HTMLResponse:
        html = env.get_template("error.html.j2").render(
            title=f"wattprint: error {status}",
            nav=[("All runs", "/")],
            status=status,
            message=message,
            generated=_now(),
        )
        return HTMLResponse(html, status_code=status)

    def runs_page(request: Request) -> Response:
        metric = request.query_params.get("metric") or "accuracy"
        try:
            run_filter = RunFilter.from_params(request.query_params)
        except WattprintInputError as exc:
            return error_page(400, str(exc))

        def make(everything: list[RunRecord]) -> str:
            records, truncated = select_runs(everything, run_filter)
            regions = sorted({r.region for r in everything if r.region})
            return env.get_template("runs.html.j2").render(
                title="wattprint runs",
                nav=[("Runs", "/"), ("JSON", "/api/runs?" + str(request.query_params))],
                rows=[_row(r, metric) for r in records],
                truncated=truncated,
                filt=run_filter,
                since=request.query_params.get("since", ""),
                until=request.query_params.get("until", ""),
                statuses=STATUSES,
                regions=regions,
                metric=metric,
                generated=_now(),
            )

        return HTMLResponse(cache(request).page(page_key(request, run_filter, metric), make))

    def get_record(request: Request, run_id: str) -> RunRecord | HTMLResponse:
        try:
            return store(request).get(run_id)
        except WattprintInputError as exc:
            return error_page(404, str(exc))

    def run_page(request: Request) -> Response:
        record = get_record(request, request.path_params["run_id"])
        if isinstance(record, HTMLResponse):
            return record
        nav = [("All runs", "/"), ("JSON", f"/api/runs/{quote(record.run_id, safe='')}")]
        run_id = record.run_id

        def make(_: list[RunRecord]) -> str:  # read again here: the record of the version the page is kept for
            return run_html(store(request).get(run_id), nav=nav, env=env)

        # its charts take ~0.2 s to draw: drawn once per version of the runs (see ui/cache.py)
        return HTMLResponse(cache(request).page(f"/runs/{run_id}", make))

    def compare_page(request: Request) -> Response:
        ids = list(dict.fromkeys(request.query_params.getlist("run")))
        if not ids:
            return error_page(400, "run: select at least one run to compare (tick them in the runs list)")
        if len(ids) > MAX_COMPARE:
            return error_page(400, f"run: at most {MAX_COMPARE} runs can be compared at once, got {len(ids)}")
        records = []
        for run_id in ids:
            record = get_record(request, run_id)
            if isinstance(record, HTMLResponse):
                return record
            records.append(record)
        metric = (request.query_params.get("metric") or "accuracy").strip() or "accuracy"
        maximize = request.query_params.get("lower_is_better") not in ("1", "true", "on")
        html = comparison_html(
            records,
            metric=metric,
            maximize=maximize,
            nav=[("All runs", "/")],
            run_href=lambda r: f"/runs/{quote(r.run_id, safe='')}",
            env=env,
        )
        return HTMLResponse(html)

    def api_runs(request: Request) -> Response:
        try:
            run_filter = RunFilter.from_params(request.query_params)
        except WattprintInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

        def make(everything: list[RunRecord]) -> bytes:
            records, truncated = select_runs(everything, run_filter)
            return bytes(JSONResponse({"runs": [r.to_json_dict() for r in records], "truncated": truncated}).body)

        return Response(
            cache(request).page("/api/runs" + page_key(request, run_filter, ""), make), media_type="application/json"
        )

    def api_run(request: Request) -> Response:
        try:
            record = store(request).get(request.path_params["run_id"])
        except WattprintInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(record.to_json_dict())

    def favicon(request: Request) -> Response:
        return Response(status_code=204)

    middleware = []
    if loopback_only:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS)))
    return Starlette(
        routes=[
            Route("/", runs_page),
            Route("/runs/{run_id}", run_page),
            Route("/compare", compare_page),
            Route("/api/runs", api_runs),
            Route("/api/runs/{run_id}", api_run),
            Route("/favicon.ico", favicon),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

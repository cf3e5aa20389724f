"""A Starlette app behind wattprint's EnergyMiddleware, served by uvicorn, for the middleware tests.

    python tests/integrations/asgi_app.py PORT [--bare]

GET /light   some CPU work;  GET /heavy   4x that work;  GET /items/{item_id}   light work, a path template
POST /shutdown-check  (nothing)   The heavy and light routes report tokens (request.state.wattprint_tokens).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per request: work, not thread pools, is measured
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

UNITS = 12  # 256 x 256 matrix products: ~9 ms on one core; numpy releases the GIL, so requests run in parallel
MATRIX = np.random.default_rng(0).random((256, 256))


def spin(units: int) -> None:
    for _ in range(units):
        MATRIX @ MATRIX


async def light(request: Request) -> JSONResponse:
    await run_in_threadpool(spin, UNITS)
    request.state.wattprint_tokens = 3
    return JSONResponse({"ok": True})


async def heavy(request: Request) -> JSONResponse:
    await run_in_threadpool(spin, 4 * UNITS)
    request.state.wattprint_tokens = 12
    return JSONResponse({"ok": True})


async def item(request: Request) -> JSONResponse:
    await run_in_threadpool(spin, UNITS)
    return JSONResponse({"item": request.path_params["item_id"]})


app = Starlette(routes=[Route("/light", light), Route("/heavy", heavy), Route("/items/{item_id}", item)])

if __name__ == "__main__":
    served = app
    if "--bare" not in sys.argv:
        from wattprint.integrations.asgi import EnergyMiddleware

        served = EnergyMiddleware(app, name="asgi-test", header=True, metrics_path="/metrics", slice_s=0.05)

    uvicorn.run(served, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="on")

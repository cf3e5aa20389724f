"""A small OpenAI-compatible inference server for the endpoint tests: real models behind real routes.

    python tests/bench/openai_server.py PORT

POST /v1/embeddings  {"model": "minilm" | "minilm-x4", "input": [...]}   MiniLM sentence embeddings;
                     "minilm-x4" runs the encoder four times (a route doing 4x the work)
POST /v1/completions {"model": "tiny-gpt", "prompt": [...], "max_tokens": N}   greedy, N new tokens each
POST /v1/fail        always 500 (an endpoint that returns errors)
GET  /health
Both model routes answer with OpenAI's `usage` (prompt_tokens, completion_tokens, total_tokens).
"""

from __future__ import annotations

import copy
import sys
import threading

import torch
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from wattprint.bench import load_workload

torch.set_num_threads(1)  # requests run in parallel threads; one torch thread each keeps them independent
ENCODER = load_workload("feature-extraction", "all-MiniLM-L6-v2")
GENERATOR = load_workload("text-generation", "tiny-gpt", new_tokens=2)
TOKENIZING = threading.Lock()  # a fast tokenizer must not be entered by two threads at once


async def embeddings(request: Request) -> JSONResponse:
    body = await request.json()
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    repeat = 4 if body.get("model") == "minilm-x4" else 1

    def work() -> int:
        with TOKENIZING:
            (batch,) = ENCODER.prepare(texts, len(texts))
        for _ in range(repeat):
            done = ENCODER.run(batch)
        return done.tokens_in

    from starlette.concurrency import run_in_threadpool

    tokens = await run_in_threadpool(work)
    data = [{"object": "embedding", "index": i, "embedding": []} for i in range(len(texts))]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse({"object": "list", "data": data, "model": body.get("model"), "usage": usage})


async def completions(request: Request) -> JSONResponse:
    body = await request.json()
    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
    new = int(body.get("max_tokens", 16))

    def work() -> tuple[int, int]:
        generator = copy.copy(GENERATOR)  # shares the model; its own number of new tokens
        generator.new_tokens = max(new, 2)
        with TOKENIZING:
            (batch,) = generator.prepare(prompts, len(prompts))
        done = generator.run(batch)
        return done.tokens_in, done.tokens_out

    from starlette.concurrency import run_in_threadpool

    tokens_in, tokens_out = await run_in_threadpool(work)
    choices = [{"index": i, "text": "", "finish_reason": "length"} for i in range(len(prompts))]
    usage = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
    return JSONResponse({"object": "text_completion", "choices": choices, "usage": usage})


async def fail(request: Request) -> PlainTextResponse:
    return PlainTextResponse("model crashed", status_code=500)


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/fail/v1/embeddings", fail, methods=["POST"]),
        Route("/health", health),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

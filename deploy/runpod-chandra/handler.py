"""RunPod serverless worker for Chandra OCR (``datalab-to/chandra``; Chandra 2 via MODEL_CHECKPOINT).

The model is loaded once per worker from RunPod's model cache
(``/runpod-volume/huggingface-cache``, ``HF_HUB_OFFLINE=1``): vLLM in-process when it is
installed (``CHANDRA_BACKEND=auto|vllm``), else Hugging Face transformers
(``CHANDRA_BACKEND=hf``).  Jobs use the envelope of RunPod's official vLLM worker, or a small
batch; see ``deploy/README.md`` and ``ocrworker/envelope.py``::

    {"input": {"openai_route": "/v1/chat/completions", "openai_input": {...}}}
    {"input": {"pages": [{...}, {...}]}}

and return a list with one chat completion per page (raw model text, untouched: the client's
Chandra dialect parses it).  Set ``OCRWORKER_STANDIN=echo`` to run without a GPU.

Run locally: ``python handler.py --rp_serve_api --rp_api_port 8000``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if not (_HERE / "ocrworker").is_dir():  # source tree: deploy/ocrworker next to this folder
    sys.path.insert(0, str(_HERE.parent))

from ocrworker.envelope import ChatPage, Generation  # noqa: E402
from ocrworker.modelcache import configure_offline, resolve_model_path  # noqa: E402
from ocrworker.vllm_engine import sampling_kwargs, to_generation  # noqa: E402
from ocrworker.worker import ModelFn, PageWorker, env_float, env_int  # noqa: E402

log = logging.getLogger("chandra-worker")

DEFAULT_CHECKPOINT = "datalab-to/chandra"


def model_checkpoint() -> str:
    return os.environ.get("MODEL_CHECKPOINT", "").strip() or DEFAULT_CHECKPOINT


def served_model_name() -> str:
    return os.environ.get("OPENAI_SERVED_MODEL_NAME_OVERRIDE", "").strip() or model_checkpoint()


def load_model() -> ModelFn:
    """Resolve the cached weights and build the model call (vLLM first, transformers fallback)."""
    configure_offline()
    path = resolve_model_path(model_checkpoint())
    backend = os.environ.get("CHANDRA_BACKEND", "auto").strip().lower()
    if backend not in ("auto", "vllm", "hf"):
        raise ValueError(f"CHANDRA_BACKEND={backend!r}: use auto, vllm or hf")
    log.info("loading %s from %s (backend=%s)", model_checkpoint(), path, backend)
    if backend in ("auto", "vllm"):
        try:
            return _load_vllm(path)
        except ImportError:
            if backend == "vllm":
                raise
            log.warning("vllm is not installed; falling back to transformers")
    return _load_hf(path)


def _load_vllm(path: str) -> ModelFn:
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=path,
        served_model_name=served_model_name(),
        max_model_len=env_int("MAX_MODEL_LEN", 32768),
        gpu_memory_utilization=env_float("GPU_MEMORY_UTILIZATION", 0.9),
        max_num_seqs=env_int("MAX_NUM_SEQS", 32),
        limit_mm_per_prompt={"image": 1},
        enable_prefix_caching=False,
        mm_processor_cache_gb=0,
        dtype=os.environ.get("DTYPE", "bfloat16"),
    )

    def run(pages: list[ChatPage]) -> list[Generation]:
        params = [SamplingParams(**sampling_kwargs(p)) for p in pages]
        outputs = llm.chat([p.messages for p in pages], params, use_tqdm=False)
        return [to_generation(o) for o in outputs]

    return run


def _load_hf(path: str) -> ModelFn:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16, "device_map": "auto"}
    if os.environ.get("TORCH_ATTN"):
        kwargs["attn_implementation"] = os.environ["TORCH_ATTN"]
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs).eval()
    processor = AutoProcessor.from_pretrained(path)
    eos_ids = {processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id} - {None}

    def run(pages: list[ChatPage]) -> list[Generation]:
        out: list[Generation] = []
        for page in pages:  # transformers path: one page at a time (as chandra's own hf path)
            messages = [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "image": page.image},
                        {"type": "text", "text": page.prompt},
                    ],
                }
            ]
            text = processor.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            inputs = processor(text=[text], images=[page.image], return_tensors="pt").to(
                model.device
            )
            temperature = float(page.sampling.get("temperature", 0.0))
            gen_kwargs: dict[str, Any] = {
                "max_new_tokens": page.max_tokens,
                "do_sample": temperature > 0,
            }
            if temperature > 0:
                gen_kwargs.update(
                    temperature=temperature, top_p=float(page.sampling.get("top_p", 1.0))
                )
            with torch.inference_mode():
                ids = model.generate(**inputs, **gen_kwargs)
            new = ids[0, inputs["input_ids"].shape[1] :].tolist()
            stopped = bool(new) and new[-1] in eos_ids
            out.append(
                Generation(
                    text=processor.decode(
                        new, skip_special_tokens=True, clean_up_tokenization_spaces=False
                    ),
                    finish_reason="stop" if stopped or len(new) < page.max_tokens else "length",
                    prompt_tokens=int(inputs["input_ids"].shape[1]),
                    completion_tokens=len(new),
                )
            )
        return out

    return run


WORKER = PageWorker("chandra", served_model=served_model_name(), loader=load_model)


def set_model(fn: ModelFn | None) -> None:
    """Inject the model call (tests / custom engines)."""
    WORKER.set_model(fn)


async def handler(job: dict[str, Any]) -> list[dict[str, Any]] | dict[str, Any]:
    """RunPod handler: one job in, a list of chat completions (or ``{"error": ...}``) out."""
    return await WORKER.handle(job)


if __name__ == "__main__":
    WORKER.serve(handler)

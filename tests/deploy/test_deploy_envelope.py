"""The shared job envelope: parsing, validation, reply and error shapes."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import pytest
from deploy_helpers import chat_request, data_url, page_png
from ocrworker.batching import MicroBatcher
from ocrworker.envelope import (
    Generation,
    JobError,
    Limits,
    chat_completion,
    error_output,
    parse_pages,
)
from PIL import Image


def single(body: object) -> dict:
    return {"openai_route": "/v1/chat/completions", "openai_input": body}


def test_single_page_decodes_image_prompt_and_sampling() -> None:
    body = chat_request(
        data_url(page_png(150, 90)),
        prompt="Read it",
        temperature=0.1,
        top_p=0.9,
        vllm_xargs={"ngram_size": 20},
        ignored_key=1,
    )
    job = parse_pages(single(body))
    assert job.route == "/v1/chat/completions" and not job.batch
    (page,) = job.pages
    assert page.image.size == (150, 90)
    assert page.prompt == "Read it"
    assert page.max_tokens == 256
    assert page.sampling == {"temperature": 0.1, "top_p": 0.9, "vllm_xargs": {"ngram_size": 20}}
    assert page.messages == body["messages"]


def test_batch_keeps_order_and_indexes() -> None:
    bodies = [chat_request(data_url(page_png(100 + i, 50))) for i in range(3)]
    job = parse_pages({"pages": bodies})
    assert job.batch
    assert [p.image.width for p in job.pages] == [100, 101, 102]
    assert [p.index for p in job.pages] == [0, 1, 2]


@pytest.mark.parametrize(
    ("job_input", "code", "needle"),
    [
        ("not a dict", 400, "JSON object"),
        ({}, 400, "openai_route"),
        (single(chat_request(None)), 400, "no image"),
        (single(chat_request("data:image/png;base64,!!!notbase64!!!")), 400, "not valid base64"),
        (single(chat_request("https://example.com/page.png")), 400, "remote URLs are not fetched"),
        (single(chat_request("data:image/png,rawbytes")), 400, "base64"),
        (
            single(
                chat_request("data:image/png;base64," + base64.b64encode(b"hello world").decode())
            ),
            400,
            "cannot be decoded",
        ),
        (single(chat_request(data_url(page_png()), max_tokens=0)), 400, "max_tokens"),
        (single(chat_request(data_url(page_png()), max_tokens=10**9)), 400, "exceeds"),
        (single(chat_request(data_url(page_png()), stream=True)), 400, "stream"),
        (single(chat_request(data_url(page_png()), temperature="hot")), 400, "temperature"),
        (single({"messages": "x"}), 400, "messages"),
        ({"openai_route": "/v1/embeddings", "openai_input": {}}, 404, "unsupported openai_route"),
        ({"pages": []}, 400, "non-empty"),
    ],
)
def test_invalid_inputs_raise_readable_errors(job_input: object, code: int, needle: str) -> None:
    with pytest.raises(JobError) as info:
        parse_pages(job_input)
    assert info.value.code == code
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "part",
    [
        {"type": "video_url", "video_url": {"url": "http://169.254.169.254/v.mp4"}},
        {"type": "audio_url", "audio_url": {"url": "http://10.0.0.1/a.wav"}},
        {"type": "file", "file": {"file_id": "x"}},
    ],
)
def test_media_parts_other_than_images_refused(part: dict) -> None:
    body = chat_request(data_url(page_png()))
    body["messages"][0]["content"].append(part)
    with pytest.raises(JobError, match="unsupported content part type"):
        parse_pages(single(body))


def test_two_images_in_one_request_refused() -> None:
    body = chat_request(data_url(page_png()))
    body["messages"][0]["content"].insert(
        0, {"type": "image_url", "image_url": {"url": data_url(page_png())}}
    )
    with pytest.raises(JobError, match="one image per request"):
        parse_pages(single(body))


def test_limits_pages_bytes_and_pixels() -> None:
    url = data_url(page_png(200, 200))
    with pytest.raises(JobError) as info:
        parse_pages({"pages": [chat_request(url)] * 3}, Limits(max_pages=2))
    assert info.value.code == 413
    with pytest.raises(JobError) as info:
        parse_pages(single(chat_request(url)), Limits(max_image_bytes=100))
    assert info.value.code == 413 and "larger than 100 bytes" in str(info.value)
    with pytest.raises(JobError) as info:
        parse_pages(single(chat_request(url)), Limits(max_image_pixels=199 * 200))
    assert info.value.code == 413 and "pixels" in str(info.value)
    # the same page under generous limits is fine
    assert parse_pages(single(chat_request(url)), Limits()).pages[0].image.size == (200, 200)


def test_limits_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCR_MAX_PAGES", "3")
    monkeypatch.setenv("OCR_MAX_IMAGE_BYTES", "1234")
    lim = Limits.from_env()
    assert (lim.max_pages, lim.max_image_bytes) == (3, 1234)
    monkeypatch.setenv("OCR_MAX_PAGES", "three")
    with pytest.raises(ValueError, match="OCR_MAX_PAGES"):
        Limits.from_env()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1", "I;16", "CMYK", "RGBA"])
def test_every_image_mode_reaches_the_model_as_rgb(mode: str) -> None:
    """The client sends grey pages as one-channel PNG; whatever the mode, the model gets RGB."""
    buf = io.BytesIO()
    Image.new(mode, (20, 10)).save(buf, format="TIFF" if mode == "CMYK" else "PNG")
    page = parse_pages(single(chat_request(data_url(buf.getvalue())))).pages[0]
    assert page.image.mode == "RGB" and page.image.size == (20, 10)


def test_rgba_and_palette_images_become_rgb() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (20, 10), (0, 0, 0, 0)).save(buf, format="PNG")
    page = parse_pages(single(chat_request(data_url(buf.getvalue())))).pages[0]
    assert page.image.mode == "RGB"


def test_chat_completion_shape() -> None:
    out = chat_completion(
        Generation("hello", "length", 7, 3), model="m", timing={"total_s": 1.23456}
    )
    assert out["object"] == "chat.completion" and out["model"] == "m"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert out["timing"] == {"total_s": 1.2346}


def test_error_output_is_a_json_string() -> None:
    out = error_output(JobError("bad\n  image", code=413))
    payload = json.loads(out["error"])
    assert payload == {
        "error_type": "payload_too_large",
        "error_message": "bad image",
        "code": 413,
        "retryable": False,
    }
    payload = json.loads(error_output(RuntimeError("boom"))["error"])
    assert (
        payload["code"] == 500
        and payload["retryable"] is True
        and "boom" in payload["error_message"]
    )


async def test_micro_batcher_groups_concurrent_submissions() -> None:
    calls: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        calls.append(items)
        return [i * 10 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=4, window_s=0.05)
    results = await asyncio.gather(*(batcher.submit([i]) for i in range(6)))
    assert [r[0] for r in results] == [0, 10, 20, 30, 40, 50]
    assert sorted(len(c) for c in calls) == [2, 4]
    assert max(batcher.batch_sizes) == 4


async def test_micro_batcher_propagates_errors_to_every_waiter() -> None:
    def fn(items: list[int]) -> list[int]:
        raise RuntimeError("gpu fell over")

    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=4, window_s=0.01)
    results = await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    # the runner survives a failure
    batcher.fn = lambda items: items
    assert await batcher.submit([5]) == [5]


# max_tokens under either name, present, absent or null (vLLM reads max_completion_tokens when
# max_tokens is unset): the whole kind of the two fields
@pytest.mark.parametrize(
    ("fields", "want"),
    [({}, 256), ({"max_tokens": 50}, 50), ({"max_completion_tokens": 50}, 50), ({"max_tokens": None}, 256),
     ({"max_tokens": None, "max_completion_tokens": 50}, 50), ({"max_tokens": 40, "max_completion_tokens": 50}, 40),
     ({"max_tokens": 40, "max_completion_tokens": None}, 40)],
)  # fmt: skip
def test_max_tokens_under_either_name(fields: dict, want: int) -> None:
    body = chat_request(data_url(page_png(60, 40)))
    body.pop("max_tokens", None)
    (page,) = parse_pages(single({**body, **fields}), Limits(default_max_tokens=256)).pages
    assert page.max_tokens == want


def test_every_page_of_a_batch_is_named_in_its_error_the_first_too() -> None:
    good = chat_request(data_url(page_png(60, 40)))
    for bad_at in range(3):
        bodies = [dict(good) for _ in range(3)]
        bodies[bad_at] = {**good, "n": 2}
        with pytest.raises(JobError) as err:
            parse_pages({"pages": bodies})
        assert str(err.value).startswith(f"page {bad_at + 1}: "), str(err.value)
    with pytest.raises(JobError) as one:
        parse_pages(single({**good, "n": 2}))
    assert not str(one.value).startswith("page"), str(one.value)

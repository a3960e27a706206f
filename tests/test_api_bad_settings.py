"""A setting the Python API cannot use is one of ``ocrclient.errors`` (``ConfigError``), raised
before anything runs, as the CLI's one line: they were built-in errors from deep inside
(``ValueError`` for a render DPI of 0, ``AttributeError: 'list' object has no attribute
'strip'`` for ``pages=[1, 3]``, ``UnicodeDecodeError`` for a PDF given as a profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.errors import ConfigError

from .pdfgen import text_pdf

CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "render dpi 0": ("convert", {"render": {"dpi": 0}}, "dpi must be positive"),
    "render dpi NaN": ("convert", {"render": {"dpi": float("nan")}}, "dpi must be positive"),
    "render longest side 0": ("convert", {"render": {"dpi": None, "longest_side": 0}}, "longest_side must be positive"),
    "render format gif": ("convert", {"render": {"format": "gif"}}, "unknown image format"),
    "render quality 0": ("convert", {"render": {"format": "jpeg", "quality": 0}}, "quality must be 1-100"),
    "pages as a list": ("convert", {"pages": [1, 3]}, "pages takes a range"),
    "pages as a number": ("convert", {"pages": 2}, "pages takes a range"),
    "a PDF as a profile": ("load_backend", {}, "not a TOML profile"),
    # every transport with a base URL: one that is not http(s) is refused, not retried per page
    "OpenAI API, no URL": ("convert", {"backend": "openai", "base_url": "notaurl", "model": "m", "api_key": "k"}, "not an http"),
    "RunPod, ftp URL": ("convert", {"backend": "runpod-chandra", "base_url": "ftp://x/y", "endpoint_id": "e", "api_key": "k"},
                        "not an http"),
    "ocular, no host": ("convert", {"backend": "runpod-olmocr", "transport": "ocular", "base_url": "http://", "api_key": "k"},
                        "not an http"),
    # the client's own settings, and the calls': each of the wrong kind was a bare TypeError from
    # inside (or, for scheduler_options, a failed page each), now one ConfigError
    "concurrency as a string": ("convert", {"concurrency": "4"}, "concurrency must be a whole number"),
    "concurrency 0": ("convert", {"concurrency": 0}, "concurrency must be a whole number"),
    "concurrency 2.5": ("convert", {"concurrency": 2.5}, "concurrency must be a whole number"),
    "timeout as a string": ("convert", {"timeout": "30"}, "timeout must be a positive number"),
    "timeout 0": ("convert", {"timeout": 0}, "timeout must be a positive number"),
    "timeout NaN": ("convert", {"timeout": float("nan")}, "timeout must be a positive number"),
    "page deadline NaN": ("convert", {"page_deadline_s": float("nan")}, "page_deadline_s"),
    "cold start NaN": ("convert", {"cold_start_s": float("nan")}, "cold_start_s"),
    "cache as a number": ("convert", {"cache": 123}, "cache takes True, False, a folder or a PageCache"),
    "scheduler option unknown": ("convert", {"scheduler_options": {"bogus": 1}}, "scheduler_options.bogus: not a scheduler"),
    "scheduler option a string": ("convert", {"scheduler_options": {"backoff_initial_s": "x"}},
                                  "scheduler_options.backoff_initial_s: Input should be a valid number"),
    "scheduler option negative": ("convert", {"scheduler_options": {"timeout_grace_s": -1}},
                                  "scheduler_options.timeout_grace_s: Input should be greater than or equal to 0"),
    "password as a number": ("convert", {"password": 123}, "password takes a string"),
    "on_event not callable": ("convert", {"on_event": 1}, "on_event takes a function"),
}

#: the cases that are the client's settings: refused when the client is made, before any call
CLIENT_SETTINGS = ("concurrency", "timeout", "cache", "scheduler_options")


@pytest.mark.parametrize("case", list(CASES))
def test_a_setting_the_api_cannot_use_is_a_config_error(case: str, tmp_path: Path) -> None:
    call, kwargs, needle = CASES[case]
    pdf = text_pdf(tmp_path / "a.pdf", [["Hello"]])
    with pytest.raises(ConfigError, match=needle):
        if call == "load_backend":
            ocrclient.load_backend(str(pdf))
        else:
            ocrclient.convert(pdf, **{"backend": "local", "cache": False, **kwargs})


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1].keys() & set(CLIENT_SETTINGS)])
def test_a_bad_client_setting_is_refused_when_the_client_is_made(case: str) -> None:
    _, kwargs, needle = CASES[case]
    for make in (ocrclient.Client, ocrclient.AsyncClient):
        with pytest.raises(ConfigError, match=needle):
            make("local", **kwargs)


@pytest.mark.parametrize("setting,value,needle", [
    ("max_attempts", -1, "max_attempts: Input should be greater than or equal to 1"),
    ("max_attempts", 0, "max_attempts: Input should be greater than or equal to 1"),
    ("page_deadline_s", "x", "page_deadline_s: Input should be a valid number"),
    ("cold_start_s", -5, "cold_start_s: Input should be greater than or equal to 0"),
    ("attempt_timeout_s", 0, "attempt_timeout_s: Input should be greater than 0"),
])  # fmt: skip
def test_a_loaded_backends_settings_are_checked_when_the_client_is_made(setting: str, value: Any, needle: str) -> None:
    """With a loaded Backend these four settings are the scheduler's, not the backend's: they
    were taken unchecked (a string failed every page, -1 fell back to the profile's)."""
    with ocrclient.load_backend("local") as be:
        for make in (ocrclient.Client, ocrclient.AsyncClient):
            with pytest.raises(ConfigError, match=needle):
                make(backend=be, **{setting: value})


def test_numbers_of_any_numeric_type_are_taken() -> None:
    """numpy's numbers (an int64 from an array, say) are numbers: taken as before the checks."""
    import numpy as np

    with ocrclient.Client("local", concurrency=np.int64(3), timeout=np.float64(9.5),
                          scheduler_options={"max_attempts": np.int64(2), "backoff_initial_s": np.float32(0.5)}) as c:  # fmt: skip
        assert c.concurrency == 3 and isinstance(c.concurrency, int)
    with ocrclient.load_backend("local") as be, ocrclient.Client(backend=be, max_attempts=np.int64(2)) as c:
        assert c.concurrency == be.config.concurrency


def test_one_setting_given_two_ways_is_refused() -> None:
    """``timeout`` is the attempt's limit, as ``attempt_timeout_s``: given both ways (as a keyword
    or a scheduler option) with two values, one was dropped without a word.  A bad setting, so a
    ``ConfigError`` as every other (it was a ``UsageError``, which ``except ConfigError`` missed)."""
    from ocrclient.errors import ConfigError

    for other in ({"attempt_timeout_s": 10}, {"scheduler_options": {"attempt_timeout_s": 10}}):
        with pytest.raises(ConfigError, match="are the same setting: give one"):
            ocrclient.Client("local", timeout=30, **other)  # type: ignore[arg-type]
    ocrclient.Client("local", timeout=30, scheduler_options={"attempt_timeout_s": 30}).close()  # the same: fine


# every transport's transport_options, the whole kind: an unknown name is refused naming it, and
# any value of the wrong kind for any option is a ConfigError, never a bare ValueError/TypeError
# (openai and ocular raised ValueError for "abc" and accepted any unknown name)
def _transport_settings() -> dict[str, tuple[str, dict[str, Any], set[str]]]:
    from ocrclient.transports.local import _OPTIONS as LOCAL
    from ocrclient.transports.options import MODELS
    from ocrclient.transports.runpod import _OPTIONS as RUNPOD

    return {
        "runpod": ("runpod-chandra", {"endpoint_id": "e", "api_key": "k"}, set(RUNPOD)),
        "openai": ("openai", {"base_url": "http://127.0.0.1:9/v1", "model": "m"}, set(MODELS["openai"].model_fields)),
        "ocular": ("runpod-trocr", {"transport": "ocular", "base_url": "http://127.0.0.1:9"},
                   set(MODELS["ocular"].model_fields)),
        "pool": ("openai", {"transport": "pool", "model": "m"},  # (its members name their URLs)
                 set(MODELS["pool"].model_fields) - {"members"}),
        "local": ("local", {}, set(LOCAL)),
    }  # fmt: skip


def _load(backend: str, settings: dict[str, Any], options: dict[str, Any]) -> Any:
    from ocrclient.registry import load_backend

    if settings.get("transport") == "pool":
        options = {"members": [{"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}], **options}
    be = load_backend(backend, **settings, transport_options=options)
    be.close()
    return be


@pytest.mark.parametrize("transport", ["runpod", "openai", "ocular", "pool", "local"])
def test_every_transport_refuses_an_unknown_option_by_name(transport: str) -> None:
    backend, settings, _ = _transport_settings()[transport]
    with pytest.raises(ConfigError, match="strem"):
        _load(backend, settings, {"strem": False})


@pytest.mark.parametrize(
    ("transport", "option"),
    [(t, o) for t, (_, _, names) in _transport_settings().items() for o in sorted(names)],
)
@pytest.mark.parametrize("value", ["abc", [1], {"a": 1}, -5])
def test_every_transport_option_given_a_wrong_kind_is_a_config_error(transport: str, option: str, value: Any) -> None:
    backend, settings, _ = _transport_settings()[transport]
    try:
        _load(backend, settings, {option: value})
    except ConfigError as exc:
        assert option in str(exc) or "transport_options" in str(exc) or "option" in str(exc), str(exc)
    # (a value this option takes as it is -- a route "abc", a header name -- loads: no other outcome)


def test_a_flag_given_as_false_text_is_false() -> None:
    backend, settings, _ = _transport_settings()["openai"]
    assert _load(backend, settings, {"stream": "false"}).transport.stream is False


def _dialect_profiles() -> list[tuple[str, str]]:
    """(profile, dialect) for every built-in dialect, on a profile that speaks it."""
    from ocrclient.registry import DIALECTS

    generic = {"rapidocr": "local", "trocr": "runpod-trocr"}
    return [(generic.get(d, "openai"), d) for d in sorted(DIALECTS)]


@pytest.mark.parametrize(("profile", "dialect"), _dialect_profiles())
def test_a_misspelt_dialect_option_is_refused_and_every_declared_one_taken(profile: str, dialect: str) -> None:
    """The whole kind: each built-in dialect, given a misspelling of an option it reads, raises
    ConfigError naming the option meant; each option it declares (and the run's own, the CLI's
    --text-layer / --keep-furniture, and an option of another dialect: a generic profile's own
    under --dialect) is taken.  ``text_layr = "never"`` was ignored without a word, and the text
    layer used."""
    from ocrclient.config import resolve_config
    from ocrclient.errors import ConfigError
    from ocrclient.registry import dialect_class, load_dialect

    cls = dialect_class(dialect)
    declared = dict(vars(cls)["OPTIONS"])
    over = {"model": "m", "dialect": dialect, "endpoint_id": "ep", "base_url": "http://127.0.0.1:9/v1"}
    for name in [*declared, "include_headers_footers", "text_layer"]:
        typo = name[:-1] + ("x" if name[-1] != "x" else "y")
        with pytest.raises(ConfigError, match=typo):
            load_dialect(resolve_config(profile, **over, dialect_options={typo: "x"}))
    load_dialect(resolve_config(profile, **over, dialect_options={"document_mode": False, "text_layer": "auto",
                                                                  "include_headers_footers": False,
                                                                  "prompt_position": "after"}))  # fmt: skip


async def _async_callback(event: object) -> None:
    pass


class _AsyncCallable:
    async def __call__(self, event: object) -> None:
        pass


@pytest.mark.parametrize("callback", [_async_callback, _AsyncCallable(), __import__("functools").partial(_async_callback)],
                         ids=["async def", "async __call__", "partial of async def"])  # fmt: skip
@pytest.mark.parametrize("call", ["convert", "convert_many", "stream_pages", "aconvert", "aconvert_many", "astream_pages"])
def test_an_async_on_event_is_refused_by_every_call_that_takes_one(call: str, callback: object, tmp_path: Path) -> None:
    """An ``async def`` callback was never awaited: no event reached it, and no word but a
    RuntimeWarning.  Every call that takes ``on_event`` refuses it before anything is read."""
    import asyncio

    pdf = text_pdf(tmp_path / "a.pdf", [["Hello"]])
    kw: dict[str, Any] = {"backend": "local", "cache": False, "on_event": callback}

    async def drain() -> None:
        fn = getattr(ocrclient, call)
        if call == "aconvert":
            await fn(pdf, **kw)
        else:
            async for _ in fn([pdf] if call == "aconvert_many" else pdf, **kw):
                pass

    with pytest.raises(ConfigError, match="not an async def"):
        if call.startswith("a"):
            asyncio.run(drain())
        elif call == "convert":
            ocrclient.convert(pdf, **kw)
        else:
            list(getattr(ocrclient, call)([pdf] if call == "convert_many" else pdf, **kw))


def test_no_numeric_setting_takes_a_negative_number() -> None:
    """The kind: every number among a backend's settings (counts, times, prices), given -1,
    is a ConfigError naming it: ``price_per_gpu_second = -1`` was taken, and ``ocr bench``
    priced the run below nothing."""
    import types
    import typing

    from ocrclient.config import BackendConfig, resolve_config

    def numeric(annotation: Any) -> bool:
        args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) else ()
        return annotation in (int, float) or any(a in (int, float) for a in args)

    fields = [name for name, f in BackendConfig.model_fields.items() if numeric(f.annotation)]
    assert {"concurrency", "max_attempts", "price_per_gpu_second", "price_per_hour", "cold_start_s"} <= set(fields), fields
    for name in fields:
        with pytest.raises(ConfigError, match=name):
            resolve_config("local", **{name: -1})

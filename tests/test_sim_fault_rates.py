"""Each fault rate of a :class:`FaultPlan` is a probability: a finite number in [0, 1].  Only
their sum was checked, so ``{"http_503": -0.5, "failed": 1.2}`` (sum 0.7) and NaN were taken,
and the simulator served with them (``python -m ocrclient.testing openai --rate
http_503=-0.5`` started as if all was well)."""

from __future__ import annotations

from typing import Any

import pytest

from ocrclient.testing import FaultPlan, OpenAISimulator
from ocrclient.testing.__main__ import main as sim_main
from ocrclient.testing.runpod_sim import RunPodSimulator
from ocrclient.testing.runpod_sim import main as runpod_main

BAD_RATES: list[dict[str, Any]] = [
    {"http_503": -0.5, "failed": 1.2},  # (sums to 0.7)
    {"http_503": -0.5},
    {"failed": 1.2},
    {"reset": float("nan")},
    {"hang": float("inf")},
    {"hang": float("-inf")},
    {"garbage": "0.5"},
    {"length": None},
    {"timed_out": True},
    {"http_429": [0.1]},
]


@pytest.mark.parametrize("rates", BAD_RATES, ids=repr)
def test_a_rate_that_is_no_probability_is_refused_by_name(rates: dict[str, Any]) -> None:
    bad = next(name for name, rate in rates.items() if not (isinstance(rate, float) and 0 <= rate <= 1))
    with pytest.raises(ValueError, match=f"fault rate of {bad} must be a number in \\[0, 1\\]"):
        FaultPlan(rates=rates)


@pytest.mark.parametrize("rates", [{"http_503": 0}, {"http_503": 1}, {"failed": 0.0, "reset": 1.0},
                                   {"http_503": 0.25, "failed": 0.75}])  # fmt: skip
def test_every_probability_is_taken(rates: dict[str, float]) -> None:
    assert FaultPlan(rates=rates).rates == rates


@pytest.mark.parametrize("value", ["-0.5", "1.5", "nan", "inf", "-inf"])
def test_a_bad_rate_on_the_command_line_is_one_line_exit_2(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Any) -> None:  # (a simulator taking the rate would serve until Ctrl-C)
        raise AssertionError(f"started with rate {value}")

    monkeypatch.setattr(OpenAISimulator, "start", refuse)
    monkeypatch.setattr(RunPodSimulator, "start", refuse)
    for run, argv in ((sim_main, ["openai", "--rate", f"http_503={value}"]),
                      (runpod_main, ["--fault", f"failed={value}"])):  # fmt: skip
        with pytest.raises(SystemExit) as stopped:
            run(argv)
        assert stopped.value.code == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and "[0, 1]" in err and len(err.strip().splitlines()) == 1, (argv, err)

"""Progress display: tqdm's bar on a terminal, bounded plain lines in a log file."""

from __future__ import annotations

import io

import torch
from tqdm import tqdm

from ali import progress
from ali.evaluation.classifier import predict
from ali.evaluation.classifier_nets import DigitClassifier
from ali.progress import PlainProgress, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    """A clock that moves only when told, so the interval logic needs no sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_file_gets_a_line_per_interval_and_no_carriage_returns():
    stream, clock = io.StringIO(), _Clock()
    bar = PlainProgress(100, desc="ali", interval=10.0, stream=stream, clock=clock)
    for _ in range(100):
        clock.now += 1.0  # 1 s per step: 100 s in all
        bar.update()
        bar.set_postfix({"loss_d": 0.693147, "loss_g": 0.7}, refresh=False)
    bar.close()
    text = stream.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 10  # one every 10 s; the last falls on the final step, so close adds none
    assert lines[0] == "ali: step 10/100 (10%) 1.0 steps/s loss_d=0.6931 loss_g=0.7 eta 1m30s"
    assert lines[1].startswith("ali: step 20/100 (20%)") and lines[1].endswith("eta 1m20s")
    assert lines[-1].startswith("ali: step 100/100 (100%)")


def test_close_reports_the_steps_since_the_last_line_once():
    stream, clock = io.StringIO(), _Clock()
    bar = PlainProgress(24, initial=4, desc="vae", interval=3600.0, stream=stream, clock=clock)
    for _ in range(20):
        clock.now += 0.5
        bar.update()
    bar.close()
    bar.close()  # a second close writes nothing
    assert stream.getvalue() == "vae: step 24/24 (100%) 2.0 steps/s in 10s\n"


def test_a_terminal_keeps_the_tqdm_bar_and_disabled_shows_nothing():
    terminal = _Terminal()
    bar = progress_bar(5, "ali", stream=terminal)
    assert isinstance(bar, tqdm)
    bar.update(5)
    bar.close()
    assert "\r" in terminal.getvalue()
    for stream in (_Terminal(), io.StringIO()):
        quiet = progress_bar(5, "ali", enabled=False, stream=stream, interval=0.0)
        quiet.update(5)
        quiet.close()
        assert stream.getvalue() == ""


def test_not_a_terminal_gets_plain_lines_at_the_module_interval(monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # a line after every update
    stream = io.StringIO()
    bar = progress_bar(3, "ali", stream=stream)
    assert isinstance(bar, PlainProgress)
    for _ in range(3):
        bar.update()
    bar.close()
    assert [line.split(" (")[0] for line in stream.getvalue().splitlines()] == [f"ali: step {i}/3" for i in (1, 2, 3)]


def test_classifier_predictions_write_no_carriage_returns_to_a_log(capsys):
    model = DigitClassifier()
    predict(model, torch.zeros(10, 1, 28, 28), batch=4, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines() == [err.splitlines()[0]] and err.startswith("classify: step 3/3")

"""The README's tour runs as written and does what it says."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_filter_tour_runs(capsys):
    scope: dict = {}
    exec(compile(_blocks()[0], str(README), "exec"), scope)
    rmse = float(capsys.readouterr().out.split()[0])
    assert rmse < 0.4  # far below the observation error of 1
    assert np.isfinite(scope["E"]).all()


def test_readme_network_tour_runs(monkeypatch):
    monkeypatch.chdir(README.parent)
    scope: dict = {}
    exec(compile(_blocks()[1], str(README), "exec"), scope)
    rates = scope["rec"].mean_rate_hz(scope["net"], "E")
    assert rates.shape == (10,) and np.all((rates > 17) & (rates < 26))

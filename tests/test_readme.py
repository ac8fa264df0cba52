"""The README's tour runs as written and does what it says."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs(capsys):
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[:1]
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    rmse = float(capsys.readouterr().out.split()[0])
    assert rmse < 0.4  # far below the observation error of 1
    assert np.isfinite(scope["E"]).all()

"""docs/run.ipynb runs as written on a real run and shows what the store holds."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from driver_helpers import TWIN, config

from enkf import driver
from enkf.run_config import RunConfig

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "run.ipynb"


def test_notebook_executes_on_a_run(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cfg = config(TWIN, **{"cluster.workers": 1, "assimilation.cycles": 2})
    out = tmp_path / "run.zarr"
    driver.start((RunConfig.model_validate(cfg), yaml.safe_dump(cfg)), out=out, progress=None)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("SPIKEDA_RUN", str(out))
    nbclient.NotebookClient(
        nb, timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    text = "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
    )  # fmt: skip
    assert "posterior mean [95 %]" in text and "2/2 cycles" in text
    assert sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs) >= 3  # fmt: skip
    # The last cell's posterior means are those of the store read without xarray.
    import zarr

    param = zarr.open_group(out, mode="r")["param"][...]
    (result,) = [o for o in nb.cells[-1].outputs if o["output_type"] == "execute_result"]
    summary = eval(result["data"]["text/plain"])  # the dict of posterior means
    for i, name in enumerate(["w_EE", "w_IE", "drive_pa"]):
        assert np.isclose(summary[name], param[-1, 1, :, i].mean(), rtol=1e-12)

"""Reading masks across sources by physical role (pcm.analysis.masks)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pcm.analysis.masks import dropped_inputs, kept_per_variable, kept_share
from pcm.data.published import published_masks
from pcm.variables import SPCAM, climsim_catalogue


def _mask(catalogue, keep):
    """Masks keeping, for every output, the inputs for which keep(output, input) is true."""
    outs, ins = catalogue.output_labels(), catalogue.input_labels()
    values = np.array([[keep(o, i) for i in ins] for o in outs])
    return xr.DataArray(values, dims=("output", "input"), coords={"output": outs, "input": ins})


def test_kept_share_by_role_in_either_catalogue():
    for cat in (SPCAM, climsim_catalogue(np.linspace(1.0, 1000.0, 60))):
        heat, temp = cat.roles["heating"].lower(), cat.roles["temperature"].lower()
        mask = _mask(cat, lambda o, i, h=heat, t=temp: o.startswith(h + "-")
                     and i.startswith(t + "-"))
        share = kept_share(mask, cat)
        assert share.sel(role="heating", group="temperature") == 1.0
        assert share.sel(role="heating").sum() == 1.0
        assert float(share.sel(role=["moistening", "radiation", "precipitation"]).sum()) == 0.0


def test_dropped_inputs_and_kept_per_variable_on_the_published_masks():
    mask = published_masks()["mask"]
    dropped = dropped_inputs(mask, n=3)
    assert len(dropped) == 3 and list(dropped.values) == sorted(dropped.values, reverse=True)
    assert int(dropped.iloc[0]) == int((~mask).sum("output").max())
    kept = kept_per_variable(mask, SPCAM)
    assert list(kept.index) == list(SPCAM.outputs)
    assert kept["PRECT"] == 57 and kept.mean() != 0
    assert np.isclose((kept * [30, 30, 1, 1, 1, 1, 1]).sum(), 2961)

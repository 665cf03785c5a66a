"""Reading masks across data sources: what the outputs of each physical role keep.

The published SPCAM masks, a ClimSim run and the synthetic aquaplanet have
different variables and levels, but the same physical roles
(:attr:`pcm.variables.Catalogue.roles`): heating and moistening read the
temperature, humidity and wind columns and the 2-D surface inputs. These
functions reduce a mask to such role-level shares, so that masks of different
sources can be read side by side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pcm.variables import Catalogue

__all__ = ["OUTPUT_ROLES", "INPUT_GROUPS", "kept_share", "dropped_inputs", "kept_per_variable"]

#: Output roles compared across sources.
OUTPUT_ROLES = ("heating", "moistening", "radiation", "precipitation")

#: Input groups: the three column roles, then every 2-D input together.
INPUT_GROUPS = ("temperature", "humidity", "wind", "2-D")


def _input_group(catalogue: Catalogue) -> dict[str, str]:
    by_variable = {catalogue.roles[r]: r for r in INPUT_GROUPS[:3] if r in catalogue.roles}
    return {label: by_variable.get(catalogue.variable_of_label(label), "2-D")
            for label in catalogue.input_labels()}


def kept_share(mask: xr.DataArray, catalogue: Catalogue) -> xr.DataArray:
    """Share of each input group that the masks of each output role keep.

    Parameters
    ----------
    mask : xr.DataArray ``(output, input)``
        Boolean masks with the catalogue's feature labels.
    catalogue : Catalogue
        Names the roles of the variables.

    Returns
    -------
    xr.DataArray ``(role, group)``
        Mean of the mask over the outputs of the role and the inputs of the
        group (0: never kept, 1: always kept).
    """
    group = _input_group(catalogue)
    inputs = [str(i) for i in mask["input"].values]
    outputs = [str(o) for o in mask["output"].values]
    values = np.full((len(OUTPUT_ROLES), len(INPUT_GROUPS)), np.nan)
    for i, role in enumerate(OUTPUT_ROLES):
        rows = set(catalogue.labels(catalogue.roles[role]))
        out_sel = [o for o in outputs if o in rows]
        for j, name in enumerate(INPUT_GROUPS):
            in_sel = [x for x in inputs if group.get(x) == name]
            if out_sel and in_sel:
                values[i, j] = float(mask.sel(output=out_sel, input=in_sel).astype(float).mean())
    return xr.DataArray(values, dims=("role", "group"),
                        coords={"role": list(OUTPUT_ROLES), "group": list(INPUT_GROUPS)},
                        name="kept_share",
                        attrs={"long_name": "share of the group's inputs kept by the masks of "
                                            "the role's outputs", "units": "1"})


def dropped_inputs(mask: xr.DataArray, n: int = 10) -> pd.Series:
    """The ``n`` inputs that the most outputs drop, with the number of outputs dropping them."""
    dropped = (~mask.astype(bool)).sum("output").to_series().astype(int)
    return dropped.sort_values(ascending=False, kind="stable").head(int(n)).rename("dropped by")


def kept_per_variable(mask: xr.DataArray, catalogue: Catalogue) -> pd.Series:
    """Mean number of inputs kept per output, for each output variable."""
    kept = mask.astype(bool).sum("input").to_series()
    variable = [catalogue.variable_of_label(str(o)) for o in kept.index]
    return kept.groupby(variable, sort=False).mean().rename("inputs kept (mean)")

"""The real-data chapter's ClimSim scores: ours on ClimSim's metric, beside ClimSim's own.

:func:`climsim_way_scores` predicts the test split of a ``pcm run --preset
climsim`` run with its trained networks and scores truth and prediction as
ClimSim does (:mod:`pcm.analysis.climsim_metrics`: per column and level over
time, in W/m², averaged). :func:`climsim_published_r2` reads ClimSim's published
figures for its MLP baseline (package data, with their source), and
:func:`comparison_table` sets the two side by side with both sample counts.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pcm.analysis.climsim_metrics import climsim_scores, layer_mass, to_energy_units
from pcm.data.cbrain import open_nc, sample_grid
from pcm.data.climsim import read_grid
from pcm.data.datasets import load_split
from pcm.errors import DataError
from pcm.method.evaluate import predict
from pcm.run.rundir import RunDir

__all__ = ["SHORT_NAMES", "R2_FLOOR", "climsim_published_r2", "climsim_way_scores",
           "comparison_table", "readable_table", "comparison_outcome"]

#: ClimSim's short names of its targets (its tables).
SHORT_NAMES = {"ptend_t": "dT/dt", "ptend_q0001": "dq/dt", "cam_out_NETSW": "NETSW",
               "cam_out_FLWDS": "FLWDS", "cam_out_PRECSC": "PRECSC", "cam_out_PRECC": "PRECC",
               "cam_out_SOLS": "SOLS", "cam_out_SOLL": "SOLL", "cam_out_SOLSD": "SOLSD",
               "cam_out_SOLLD": "SOLLD"}


def climsim_published_r2() -> dict:
    """ClimSim's published R² of its MLP baseline, with source and sample counts.

    Returns
    -------
    dict
        ``source``, ``model``, ``metric``, ``train`` and ``evaluation`` (months,
        stride, steps, samples, how the counts were derived), ``r2`` (variable ->
        value, None where ClimSim's table shows "--").
    """
    text = resources.files("pcm").joinpath("data/published/climsim_mlp_r2.json").read_text()
    return json.loads(text)


def _hybrid(test_path: Path) -> dict:
    """``hyai hybi P0`` of the run's data: ``conversion.json`` beside it, or the grid file."""
    manifest = test_path.parent / "conversion.json"
    if manifest.is_file():
        hybrid = json.loads(manifest.read_text()).get("hybrid_interfaces") or {}
        if hybrid:
            return hybrid
    with open_nc(test_path) as nc:
        grid_info = getattr(nc, "grid_info", None)
    if grid_info and Path(grid_info).is_file():
        hybrid = read_grid(grid_info)["hybrid"]
        if hybrid:
            return hybrid
    raise DataError("no hybrid interface coefficients (hyai, hybi) for ClimSim's layer masses: "
                    "convert the data again with pcm data climsim (conversion.json records "
                    "them)", path=test_path)


def climsim_way_scores(run: RunDir | str | os.PathLike,
                       kinds: tuple[str, ...] = ("unconstrained", "pcmasking"), *,
                       max_samples: int | None = None) -> xr.Dataset:
    """ClimSim's R² of a run's networks on its test split.

    Parameters
    ----------
    run : RunDir or path-like
        A finished ``pcm run --preset climsim`` run.
    kinds : tuple of str
        Model kinds to score (missing ones are skipped).
    max_samples : int, optional
        At most this many test samples (rounded down to whole steps).

    Returns
    -------
    xr.Dataset
        :func:`pcm.analysis.climsim_metrics.climsim_scores` per model (``model``
        dimension), with attributes ``n_samples``, ``n_time``, ``n_col`` and
        ``train_samples``.

    Raises
    ------
    DataError
        Not ClimSim data, no hybrid coefficients, or no trained model.
    """
    run = RunDir.of(run)
    catalogue = run.catalogue
    if catalogue.name != "climsim":
        raise DataError(f"holds {catalogue.name} data; ClimSim's scores need a ClimSim run",
                        path=run.root)
    path = run.split_path("test")
    grid = sample_grid(path)
    n_col = len(grid["lat"])
    norm = run.norm()
    n = grid["n_time"] * n_col
    if max_samples is not None:
        n = max(n_col, min(n, int(max_samples)) // n_col * n_col)
    x, y = load_split(path, norm, max_samples=n)
    hybrid = _hybrid(Path(path))
    ps_col = catalogue.input_labels().index(catalogue.feature_label("state_ps"))
    ps = norm.denormalize_inputs(x, dtype="float64")[:, ps_col]
    mass = layer_mass(ps, hybrid["hyai"], hybrid["hybi"], float(hybrid["P0"]))
    variables = [catalogue.variable_of_label(lab) for lab in catalogue.output_labels()]

    def energy(y_phys: np.ndarray) -> np.ndarray:
        out = np.empty_like(y_phys)
        ten = np.flatnonzero([v.startswith("ptend_") for v in variables])
        rest = np.setdiff1d(np.arange(len(variables)), ten)
        for name in dict.fromkeys(variables[i] for i in ten):  # one variable: levels = mass
            idx = np.flatnonzero(np.array(variables) == name)
            out[:, idx] = to_energy_units(y_phys[:, idx], [name] * idx.size, mass)
        out[:, rest] = to_energy_units(y_phys[:, rest], [variables[i] for i in rest])
        return out

    truth = energy(norm.denormalize_outputs(y, dtype="float64"))
    models = run.load_models(kinds)
    if not models:
        raise DataError(f"no trained model of kinds {kinds}", path=run.root / "models")
    parts = []
    for kind, model in models.items():
        pred = energy(norm.denormalize_outputs(
            predict(model, x, n_outputs=catalogue.n_outputs), dtype="float64"))
        parts.append(climsim_scores(truth, pred, variables, n_col).expand_dims(model=[kind]))
    ds = xr.concat(parts, dim="model")
    ds.attrs.update(parts[0].attrs, train_samples=int(run.split_samples("train")))
    return ds


def comparison_table(scores: xr.Dataset, published: dict | None = None) -> pd.DataFrame:
    """Ours beside ClimSim's MLP, per variable, on ClimSim's metric.

    Parameters
    ----------
    scores : xr.Dataset
        :func:`climsim_way_scores`.
    published : dict, optional
        :func:`climsim_published_r2` (default: read it).

    Returns
    -------
    pandas.DataFrame
        Rows: ClimSim's short names. Columns: one per model of ``scores`` (R²,
        entries of negligible variance left out), ``left out`` (those entries, as
        ``k/n``), ``ClimSim MLP`` (None: "--" in ClimSim's table).
    """
    published = climsim_published_r2() if published is None else published
    rows = {}
    for var in scores["var"].values:
        var = str(var)
        row = {str(m): float(scores["r2"].sel(model=m, var=var))
               for m in scores["model"].values}
        left = int(scores["n_left_out"].isel(model=0).sel(var=var))
        total = int(scores["n_entries"].isel(model=0).sel(var=var))
        row["left out"] = f"{left}/{total}"
        row["ClimSim MLP"] = published["r2"].get(var)
        rows[SHORT_NAMES.get(var, var)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


#: R² below this is printed as "< -1" (worse than predicting the mean by more than the
#: variance itself): such values are dominated by entries that barely vary.
R2_FLOOR = -1.0


def readable_table(table: pd.DataFrame, floor: float = R2_FLOOR) -> pd.DataFrame:
    """:func:`comparison_table` as strings: R² to three decimals, values below ``floor``
    as ``< floor``, missing ones (ClimSim's "--") as ``--``."""
    def cell(value):
        if isinstance(value, str):
            return value
        if value is None or not np.isfinite(value):
            return "--"
        return f"< {floor:g}" if value < floor else f"{value:.3f}"

    return table.apply(lambda col: col.map(cell))


def comparison_outcome(table: pd.DataFrame, model: str = "pcmasking") -> str:
    """One sentence: for how many of ClimSim's scored variables ``model`` is below the MLP."""
    both = table[[model, "ClimSim MLP"]].astype(float).dropna()
    below = [str(v) for v in both.index if both.loc[v, model] < both.loc[v, "ClimSim MLP"]]
    return (f"on ClimSim's metric, `{model}` scores below ClimSim's MLP on {len(below)} of the "
            f"{len(both)} variables ClimSim reports ({', '.join(below) or 'none'})")

"""Step 6 of the method: SHAP attributions, scores against the true drivers, the summary.

:func:`run_shap` writes ``shap.nc`` (mean |SHAP| per model kind, output and input)
with the batched DeepSHAP of :mod:`pcm.analysis.attribution`; :func:`driver_tables`
scores masks and attributions against the generator's true drivers with the one
rule of :mod:`pcm.analysis.scoring` (synthetic data only). The headline numbers are
:mod:`pcm.method.summary`.
"""

from __future__ import annotations

import os
import time

import numpy as np
import xarray as xr

from pcm.analysis import attribution
from pcm.analysis.scoring import driver_scores, nondriver_share, ranking_scores
from pcm.data.streaming import DiskSplit
from pcm.errors import DataError, ParameterError
from pcm.io import write_netcdf
from pcm.params.config import ShapConfig
from pcm.run.rundir import MODEL_KINDS, RunDir

__all__ = ["SHAP_METHODS", "run_shap", "driver_tables"]

#: Attribution methods of :func:`run_shap`.
SHAP_METHODS = ("deep", "deepexplainer", "gradient_input")


def _attributions(model, x_explain, x_background, method: str) -> np.ndarray:
    if method == "deep":
        return attribution.deep_shap(model, x_explain, x_background)
    if method == "gradient_input":
        return attribution.gradient_input(model, x_explain, x_background)
    return np.stack([attribution.deep_explainer_shap(model.export_network(n), x_explain,
                                                     x_background, check_additivity=False)
                     for n in range(model.n_networks)])


def _sample(run: RunDir, split: str, n: int, max_samples: int | None,
            rng: np.random.Generator) -> np.ndarray:
    """``n`` normalised inputs drawn without replacement from the first ``max_samples``
    rows of ``split``; only the drawn rows are read (memory bounded by ``n``)."""
    total = run.split_samples(split)
    total = total if max_samples is None else min(total, int(max_samples))
    index = np.sort(rng.choice(total, size=min(int(n), total), replace=False))
    source = DiskSplit(run.split_path(split), run.norm(), max_samples=total)
    try:
        return source.read_rows(index)[0]
    finally:
        source.close()


def run_shap(run: RunDir | str | os.PathLike, config: ShapConfig, *, method: str = "deep",
             max_samples: int | None = None,
             kinds: tuple[str, ...] = MODEL_KINDS) -> xr.Dataset:
    """Mean |SHAP| of every trained model kind -> ``RUN/shap.nc``.

    Background samples are drawn from the training split, explained samples
    from the test split, both without replacement with ``seed``.

    Parameters
    ----------
    run : RunDir or path-like
        Run directory.
    config : ShapConfig
        ``shap_background`` and ``shap_samples``: number of background and explained
        samples; ``seed``: seed of the sample draws.
    method : {"deep", "deepexplainer", "gradient_input"}
        Batched DeepSHAP (:func:`pcm.analysis.attribution.deep_shap`), the reference
        ``shap.DeepExplainer`` network by network (slow), or gradient x input.
    max_samples : int, optional
        Read at most this many samples of each split before drawing.
    kinds : tuple of str
        Model kinds (missing models are skipped).

    Returns
    -------
    xr.Dataset
        ``shap(model, output, input)``: mean over explained samples of |SHAP|,
        inputs normalised, outputs in energy units (W/kg for TPHYSTND and PHQ;
        the normalised network outputs). NaN for outputs without a network.
    """
    if method not in SHAP_METHODS:
        raise ParameterError("method", f"expected one of {SHAP_METHODS}, got {method!r}")
    n_background, n_explain, seed = config.shap_background, config.shap_samples, config.seed
    for key, value in (("shap_background", n_background), ("shap_samples", n_explain)):
        if int(value) < 1:
            raise ParameterError(key, f"must be a positive number of samples, got {value}")
    run = RunDir.of(run)
    start = time.perf_counter()
    models = run.load_models(kinds)
    if not models:
        raise DataError(f"no trained model of kinds {kinds}; run the training notebooks first",
                        path=run.root / "models")
    rng = np.random.default_rng(seed)
    x_background = _sample(run, "train", n_background, max_samples, rng)
    x_explain = _sample(run, "test", n_explain, max_samples, rng)
    catalogue = run.catalogue
    n_out, n_in = catalogue.n_outputs, catalogue.n_inputs
    values = np.full((len(models), n_out, n_in), np.nan)
    for m, model in enumerate(models.values()):
        phi = _attributions(model, x_explain, x_background, method)
        values[m, np.asarray(model.targets, dtype=int)] = np.abs(phi).mean(axis=1)
    ds = xr.Dataset(
        {"shap": (("model", "output", "input"), values, {
            "long_name": "mean absolute SHAP value over the explained test samples "
                         "(inputs normalised, outputs in energy units)",
            "units": "normalised output units (energy units): W/kg for heating and "
                     "moistening, kW/m2 for radiative fluxes, m/s x 1.728e6 for "
                     "precipitation"})},
        coords={"model": list(models), "output": catalogue.output_labels(),
                "input": catalogue.input_labels()},
        attrs={"method": method, "n_background": len(x_background),
               "n_explain": len(x_explain), "seed": int(seed),
               "background": "train split", "explained": "test split"})
    seconds = time.perf_counter() - start
    ds.attrs["seconds"] = seconds
    write_netcdf(ds, run.artefact("shap.nc"))
    run.record_seconds(shap=seconds)
    return ds


def driver_tables(run: RunDir | str | os.PathLike) -> dict:
    """Driver scores of a run: ``{"masks": {kind: Dataset}, "shap": Dataset | None,
    "ranking": Dataset | None}``.

    Empty when the run has no ground truth (real SPCAM data). Masks are scored
    with :func:`pcm.analysis.scoring.driver_scores` (strong-driver scores too where
    ``drivers.nc`` holds the driver strength), ``shap.nc`` with
    :func:`pcm.analysis.scoring.nondriver_share` and ``masking_vectors.nc`` with
    :func:`pcm.analysis.scoring.ranking_scores`.
    """
    run = RunDir.of(run)
    drivers = run.drivers()
    if drivers is None:
        return {}
    strength = run.driver_strength()
    tables: dict = {"masks": {k: driver_scores(m, drivers, strength)
                              for k, m in run.masks().items()},
                    "shap": None, "ranking": None}
    path = run.artefact("shap.nc")
    if path.exists():
        with xr.open_dataset(path) as ds:
            tables["shap"] = nondriver_share(ds["shap"].load(), drivers)
    if run.artefact("masking_vectors.nc").exists():
        tables["ranking"] = ranking_scores(run.masking_vectors(), drivers, strength)
    return tables

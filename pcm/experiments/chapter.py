"""The experiments chapter: threshold strategies, sparsity validation, climate-shift test.

Each function reads a finished run directory (``pcm run``), computes one experiment
and returns a labelled :class:`xarray.Dataset` (written under ``RUN/experiments/``
where it is costly); the λ and architecture sweeps are :func:`pcm.experiments.sweep.run_sweep`, run
ahead of the notebook by :mod:`pcm.experiments.chapter_sweeps`.
The figures are in :mod:`pcm.analysis.figures`; the notebook
``notebooks/08_experiments.ipynb`` only calls these functions.

* :func:`threshold_strategies` scores the masks that different rules pick from the
  same masking vectors: the search criteria ``val_loss``, ``train_loss`` (both from
  the run's own search, when it trained search networks) and ``proxy``, the parsimony
  tolerance on top of them, and fixed percentiles of the masking vector.
* :func:`sparsity_validation` sets the masking-vector entries of true drivers and of
  non-drivers against those of untrained networks of the same architecture.
* :func:`stability_selection` trains B pre-masking networks per output with different
  initial weights, as one stack, and keeps an input selected in at least a share pi of
  the B runs; scored against the run's single-run mask.
* :func:`ranking_diagnosis` says why the run's masking vectors do not rank every
  strong driver above every non-driver: proxies of true drivers ranked ahead, and
  strong drivers the networks left unused (:mod:`pcm.analysis.diagnosis`).
* :func:`shift_test` generates test sets with the sea-surface temperature shifted
  (Clausius-Clapeyron moisture follows) and scores every trained model on each: R²
  against the shift.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.analysis.diagnosis import PROXY_CUT, input_correlation, ranking_failures
from pcm.analysis.r2 import variable_means
from pcm.analysis.scoring import (
    mask_scores,
    mean_ranking_scores,
    ranking_scores,
)
from pcm.book.pages import copy_notebooks
from pcm.data import synthetic
from pcm.data.cbrain import sample_grid
from pcm.data.cbrain_write import write_cbrain
from pcm.errors import DataError, ParameterError
from pcm.io import write_netcdf
from pcm.method.evaluate import r2_on_split
from pcm.method.masking import l1_masking_vectors, loss_search, premask_index, proxy_losses
from pcm.method.ranked_selection import premask_train_config
from pcm.method.thresholds import (
    choose_thresholds,
    masks_from_thresholds,
    relative_thresholds,
    threshold_table,
)
from pcm.nn.trainer import train_stacked
from pcm.run.pipeline import NotebookError, execute_notebook, failure_message, notebook_parameters
from pcm.run.rundir import MODEL_KINDS, RunDir
from pcm.run.steps import NOTEBOOK_DIR

__all__ = ["threshold_strategies", "sparsity_validation", "stability_selection",
           "ranking_diagnosis", "shift_test", "SHIFTS", "GOAL", "goal_check",
           "NOTEBOOK", "run_notebook"]

#: The experiments notebook (repository checkout).
NOTEBOOK = NOTEBOOK_DIR / "08_experiments.ipynb"

#: SST shifts (K) of the stress test.
SHIFTS = (-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0)

#: Seed offset of the shifted test sets: one random stream for all shifts (only the
#: climate differs) and different from the training data's.
_SHIFT_SEED = 7919

#: The goal the experiments chapter measures configurations against: strong-driver F1
#: of the masks at least 0.9, share of PCMasking's mean |SHAP| on non-drivers at most
#: 0.05, and mean R² at most 0.02 below the unconstrained network's.
GOAL = {"strong_f1": 0.9, "shap_nondriver_share": 0.05, "r2_gap": 0.02}


def _true_drivers(run: RunDir, experiment: str):
    """The run's true drivers; a DataError naming the experiment for data without them."""
    drivers = run.drivers()
    if drivers is None:
        raise DataError(f"{experiment}: needs the true drivers (synthetic data)",
                        path=run.manifest_path)
    return drivers


def _scores_table(rows: dict[str, dict[str, float]], dim: str) -> xr.Dataset:
    """Rows of :func:`~pcm.analysis.scoring.mask_scores` (one per rule) as a Dataset on
    dimension ``dim``."""
    names = list(rows)
    data = {k: (dim, np.array([rows[n][k] for n in names], dtype=float),
                {"long_name": "mean inputs kept per output" if k == "inputs_kept"
                 else f"{k.replace('_', ' ')} (mean over outputs)", "units": "1"})
            for k in rows[names[0]]}
    return xr.Dataset(data, coords={dim: names})


def threshold_strategies(run: RunDir | str | os.PathLike, *,
                         percentiles: tuple[float, ...] = (50.0, 70.0, 80.0, 90.0, 95.0),
                         tolerances: tuple[float, ...] = (0.01, 0.05),
                         ratios: tuple[float, ...] = (0.1, 0.2, 0.3),
                         n_thresholds: int | None = None,
                         threshold_percentile: float | None = None) -> xr.Dataset:
    """Driver scores of the masks that each threshold rule picks from the run's vectors.

    Parameters
    ----------
    run : RunDir or path-like
        A finished run with ground truth (synthetic data), ``models/premask.keras`` and
        a threshold search on its L1 masking vectors (``thresholds.nc``, or
        ``paper_rule_thresholds.nc`` where the run ranks by another ranking:
        :func:`pcm.method.masking.loss_search`).
    percentiles : tuple of float
        Fixed rules: keep the inputs above this percentile of each masking vector.
    tolerances : tuple of float
        Parsimony tolerances applied to each loss criterion.
    ratios : tuple of float
        Relative rules: keep the inputs above this share of each output's largest entry
        (:func:`pcm.method.thresholds.relative_thresholds`).
    n_thresholds, threshold_percentile : optional
        Candidate grid (default: that of the search).

    Returns
    -------
    xr.Dataset
        ``precision recall f1 strong_precision strong_recall strong_f1 inputs_kept
        (strategy)``, macro means over outputs (:mod:`pcm.analysis.scoring`).
    """
    run = RunDir.of(run)
    drivers = _true_drivers(run, "threshold strategies")
    strength = run.driver_strength()
    vectors = l1_masking_vectors(run)
    searched = loss_search(run)
    n_thr = int(n_thresholds or searched.attrs["n_thresholds"])
    pct = float(threshold_percentile if threshold_percentile is not None
                else searched.attrs["percentile"])
    table = threshold_table(vectors, n_thr, pct)
    values = table.values
    losses: dict[str, np.ndarray] = {}
    if np.isfinite(searched["val_loss"].values).any() and searched.attrs["criterion"] != "proxy":
        losses["val_loss"] = searched["val_loss"].values
        losses["train_loss"] = searched["train_loss"].values
    out_idx, thr_idx = np.nonzero(~np.isnan(values))
    masks = vectors.values[out_idx] > values[out_idx, thr_idx][:, None]
    xv, yv = run.arrays("valid", warn=False)
    proxy = np.full(values.shape, np.nan)
    premask = run.load_model("premask")
    networks = premask_index(premask, vectors.sizes["output"])[out_idx]
    proxy[out_idx, thr_idx] = proxy_losses(premask, masks, networks, xv, yv,
                                           stack=2 * vectors.sizes["output"])  # memory
    losses["proxy"] = proxy
    rows: dict[str, dict[str, float]] = {}
    for name, loss in losses.items():
        for tol in (0.0, *tolerances):
            chosen = choose_thresholds(loss, values, tol)
            mask = masks_from_thresholds(vectors, values[np.arange(len(values)), chosen])
            rows[name if tol == 0 else f"{name} + tolerance {tol:g}"] = mask_scores(
                mask, drivers, strength)
    for p in percentiles:
        cut = np.percentile(vectors.values, p, axis=1)
        rows[f"percentile {p:g}"] = mask_scores(masks_from_thresholds(vectors, cut), drivers,
                                                strength)
    for r in ratios:
        cut = relative_thresholds(vectors.values, r)
        rows[f"relative {r:g}"] = mask_scores(masks_from_thresholds(vectors, cut), drivers,
                                              strength)
    return _scores_table(rows, "strategy").assign_attrs(
        n_thresholds=n_thr, percentile=pct, run_criterion=searched.attrs["criterion"])


def sparsity_validation(run: RunDir | str | os.PathLike) -> xr.Dataset:
    """L1 masking-vector entries of drivers, non-drivers and untrained networks
    (:func:`pcm.method.masking.l1_masking_vectors`: the row norms, whatever the run ranks by).

    The untrained reference is a pre-masking model of the run's architecture and
    seed before any training: what its masking vectors look like with no signal.

    Returns
    -------
    xr.Dataset
        ``masking_vector(output, input)`` of the run, ``untrained(output, input)``,
        ``drivers(output, input)`` and, per group (``driver``, ``non-driver``,
        ``untrained``), the quantiles ``quantile(group, q)``.
    """
    from pcm.nn.networks import StackedMLP

    run = RunDir.of(run)
    drivers = _true_drivers(run, "sparsity validation")
    vectors = l1_masking_vectors(run)
    premask = run.load_model("premask")
    fresh = StackedMLP(premask.n_networks, premask.hidden_units,
                       n_inputs=run.catalogue.n_inputs, input_layer=True,
                       targets=premask.targets, seed=premask.seed)
    untrained = vectors.copy(data=fresh.masking_vectors()).rename("untrained")
    truth = drivers.sel(output=vectors["output"], input=vectors["input"]).values.astype(bool)
    groups = {"driver": vectors.values[truth], "non-driver": vectors.values[~truth],
              "untrained": untrained.values.ravel()}
    q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    quantiles = np.stack([np.quantile(v, q) for v in groups.values()])
    return xr.Dataset(
        {"masking_vector": vectors, "untrained": untrained.assign_attrs(
            long_name="masking vector of the same pre-masking networks before training",
            units="1"),
         "drivers": (("output", "input"), truth, {"long_name": "true driver", "units": "1"}),
         "quantile": (("group", "q"), quantiles,
                      {"long_name": "quantiles of the masking-vector entries", "units": "1"})},
        coords={"group": list(groups), "q": q})


def ranking_diagnosis(run: RunDir | str | os.PathLike, *, samples: int = 50_000,
                      proxy_cut: float = PROXY_CUT, l1: bool = False
                      ) -> tuple[xr.Dataset, xr.Dataset]:
    """Why the run's ranking misses: :func:`pcm.analysis.diagnosis.ranking_failures`.

    Parameters
    ----------
    run : RunDir or path-like
        A run with ground truth and driver strength (synthetic data) and
        ``masking_vectors.nc``.
    l1 : bool
        Diagnose the L1 masking vectors of the pre-masking networks
        (:func:`pcm.method.masking.l1_masking_vectors`) instead of the run's ranking.
    samples : int
        Training samples that the input correlations are computed from.
    proxy_cut : float
        Smallest R² on the true drivers that makes a proxy (and on the used inputs a
        stand-in).

    Returns
    -------
    per_output, per_variable : xr.Dataset
        The failures of every output with strong drivers, and their sums over the
        outputs of each output variable (``outputs``: how many were summed).
    """
    run = RunDir.of(run)
    drivers = _true_drivers(run, "ranking diagnosis")
    strength = run.driver_strength()
    if strength is None:
        raise DataError("ranking diagnosis: the data's drivers file has no driver_strength "
                        "(written before it existed); prepare the data again",
                        path=run.data_path("drivers"))
    x, _ = run.arrays("train", max_samples=samples, warn=False)
    correlation = input_correlation(x, run.catalogue.input_labels())
    vectors = l1_masking_vectors(run) if l1 else run.masking_vectors()
    per_output = ranking_failures(vectors, drivers, strength, correlation,
                                  proxy_cut=proxy_cut)
    counts = per_output[["n_strong", "n_strong_unused", "n_unused_stand_in", "n_ahead",
                         "n_proxy_ahead"]]
    variable = xr.DataArray([run.catalogue.variable_of_label(o)
                             for o in per_output["output"].values], dims="output",
                            name="variable")
    per_variable = counts.groupby(variable).sum()
    per_variable["outputs"] = per_output["n_strong"].groupby(variable).count()
    order = [v for v in run.catalogue.outputs if v in per_variable["variable"].values]
    return per_output, per_variable.sel(variable=order)


def goal_check(table: xr.Dataset) -> xr.Dataset:
    """The three scores of :data:`GOAL` per point of a sweep table, and whether each is met.

    Parameters
    ----------
    table : xr.Dataset
        :func:`pcm.experiments.sweep.sweep_table` or :func:`pcm.experiments.sweep.run_table`
        (dimension ``point``).

    Returns
    -------
    xr.Dataset
        ``strong_f1``, ``oracle_strong_f1`` (the best any threshold could reach on the
        same vectors), ``shap_nondriver_share``, ``r2_gap`` (unconstrained minus
        PCMasking mean R²) and ``meets_goal`` (all three targets met) on ``point``.
    """
    gap = table["r2_unconstrained_mean"] - table["r2_pcmasking_mean"]
    out = xr.Dataset({
        "strong_f1": table["strong_f1"],
        "oracle_strong_f1": table["oracle_strong_f1"],
        "shap_nondriver_share": table["shap_nondriver_share_pcmasking"],
        "r2_gap": gap.assign_attrs(long_name="mean R² of the unconstrained network minus "
                                   "PCMasking's", units="1"),
    })
    met = ((out["strong_f1"] >= GOAL["strong_f1"])
           & (out["shap_nondriver_share"] <= GOAL["shap_nondriver_share"])
           & (out["r2_gap"] <= GOAL["r2_gap"]))
    out["meets_goal"] = met.assign_attrs(long_name="all three goal targets met", units="1")
    out.attrs.update({f"goal_{k}": v for k, v in GOAL.items()})
    return out


def stability_selection(run: RunDir | str | os.PathLike, *, runs: int = 5,
                        share: float = 0.6, progress: bool = False) -> xr.Dataset:
    """Stability selection of inputs over ``runs`` pre-masking networks per output.

    The ``runs x 65`` networks train as ONE stack with the run's pre-masking
    hyper-parameters (``history_premask.nc``) and different initial weights (same
    mini-batches: the engine shares them across a stack, so resamples of the data are
    not offered). Each run selects *by rank*: for every output, the inputs with the
    largest masking-vector entries, as many as the run's own mask keeps; an input is
    kept when at least ``share`` of the runs selected it. Checkpoints go to
    ``RUN/experiments/stability/`` (resumable).

    Parameters
    ----------
    run : RunDir or path-like
        A finished synthetic run (masks, premask history, drivers).
    runs : int
        B, the number of pre-masking networks per output.
    share : float
        pi, the share of the runs that must select an input.
    progress : bool
        Per-epoch lines on stderr.

    Returns
    -------
    xr.Dataset
        ``stable_mask(output, input)``, ``selection_frequency(output, input)`` and the
        table ``precision recall f1 strong_precision strong_recall strong_f1
        inputs_kept auc (rule)`` for ``single run`` and ``stability``
        (``auc``: of the run's vector and of the mean of the B normalised vectors);
        attrs ``seconds`` (training of the stack) and ``runs``, ``share``.
    """
    from pcm.nn.networks import StackedMLP

    if int(runs) < 1:
        raise ParameterError("runs", f"must be >= 1, got {runs}")
    if not 0 < float(share) <= 1:
        raise ParameterError("share", f"must lie in (0, 1], got {share}")
    run = RunDir.of(run)
    drivers = _true_drivers(run, "stability selection")
    strength = run.driver_strength()
    single = run.mask("pcmasking")
    vectors = run.masking_vectors()
    config = premask_train_config(run)
    n_out = vectors.sizes["output"]
    model = StackedMLP(n_out * int(runs), config.hidden_units,
                       n_inputs=run.catalogue.n_inputs, input_layer=True,
                       targets=np.tile(np.arange(n_out), int(runs)), seed=config.seed + 1,
                       dtype=config.dtype_policy)
    x, y, xv, yv = run.training_arrays(config.max_train_samples, config.compute_dtype)
    start = time.perf_counter()
    hist = train_stacked(model, x, y, config, x_val=xv, y_val=yv,
                         checkpoint_dir=run.root / "experiments" / "stability",
                         desc="stability selection", progress=progress,
                         labels=run.catalogue.output_labels())
    seconds = time.perf_counter() - start + hist.attrs["seconds_previous_sessions"]
    each = model.masking_vectors().reshape(int(runs), n_out, -1)
    kept = single.values.sum(axis=1)
    order = np.argsort(-each, axis=2, kind="stable")
    ranks = np.argsort(order, axis=2, kind="stable")  # 0 = largest entry
    selected = ranks < kept[None, :, None]
    frequency = vectors.copy(data=selected.mean(axis=0)).rename("selection_frequency")
    stable = masks_from_thresholds(frequency, np.full(n_out, float(share) - 1e-9))
    mean_vector = vectors.copy(data=(each / each.max(axis=2, keepdims=True)).mean(axis=0))
    rows = {"single run": mask_scores(single, drivers, strength),
            "stability": mask_scores(stable, drivers, strength)}
    rows["single run"]["auc"] = mean_ranking_scores(ranking_scores(vectors, drivers))["auc"]
    rows["stability"]["auc"] = mean_ranking_scores(ranking_scores(mean_vector, drivers))["auc"]
    out = _scores_table(rows, "rule")
    out["stable_mask"] = stable.assign_attrs(long_name="input kept by stability selection",
                                             units="1")
    out["selection_frequency"] = frequency.assign_attrs(
        long_name="share of the runs that selected the input (by rank)", units="1")
    out.attrs = {"runs": int(runs), "share": float(share), "seconds": seconds,
                 "premask_seconds": float(run.history("premask").attrs.get("phase_seconds",
                                                                           np.nan)),
                 "selection": "by rank: as many inputs per output as the single-run mask"}
    return out


def shift_test(run: RunDir | str | os.PathLike, shifts: tuple[float, ...] = SHIFTS, *,
               steps: int | None = None, seed: int = 0, max_samples: int | None = None,
               kinds: tuple[str, ...] = MODEL_KINDS) -> xr.Dataset:
    """R² of every trained model on test sets with the SST shifted by ``shifts`` (K).

    The test sets are generated on the run's grid (as long as its test split unless
    ``steps`` is given) with one seed for all shifts, so that only the climate
    differs, normalised with the run's training statistics; files and the result
    go to ``RUN/experiments/``.

    Returns
    -------
    xr.Dataset
        ``r2(model, shift, var)``: mean R² over each variable's outputs (the
        summary's rule), ``r2_mean(model, shift)``: its mean over variables; also
        written to ``RUN/experiments/shift_r2.nc``.
    """
    run = RunDir.of(run)
    if run.source != "synthetic":
        raise DataError("the shift test generates synthetic data; this run uses user data",
                        path=run.manifest_path)
    if not shifts:
        raise ParameterError("shifts", "give at least one SST shift")
    grid = sample_grid(run.data_path("test"))
    n_lat, n_lon = len(grid["lat"]), len(grid["lon"])
    steps = int(steps or grid["n_time"])
    models = run.load_models(kinds)
    if not models:
        raise DataError("no trained model to test", path=run.root / "models")
    norm = run.norm()
    folder = run.root / "experiments"
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for shift in shifts:
        path = folder / f"sst_{shift:+g}K.nc"
        if not path.exists():
            write_cbrain(synthetic.generate(steps, seed=seed + _SHIFT_SEED, n_lat=n_lat,
                                            n_lon=n_lon, sst_shift=float(shift)), path)
        ds = xr.concat(r2_on_split(models, Path(path), norm, max_samples), dim="model")
        parts.append(variable_means(ds["r2"]).expand_dims(shift=[float(shift)]))
    r2 = xr.concat(parts, dim="shift").transpose("model", "shift", "var")
    out = xr.Dataset({"r2": r2.assign_attrs(long_name="mean R² over the variable's outputs",
                                             units="1")})
    out["r2_mean"] = r2.mean("var").assign_attrs(long_name="mean over variables of the "
                                                 "variable-mean R²", units="1")
    out["shift"].attrs = {"long_name": "uniform SST shift of the test climate", "units": "K"}
    out.attrs = {"steps": steps, "seed": seed + _SHIFT_SEED, "grid": f"{n_lat} x {n_lon}"}
    write_netcdf(out, folder / "shift_r2.nc")
    return out


def run_notebook(src: str | os.PathLike, dst: str | os.PathLike, parameters: dict,
                 book_dir: str | os.PathLike | None = None) -> Path:
    """Execute the experiments notebook (papermill) and copy it into the book folder.

    Raises
    ------
    ParameterError
        Before anything runs: a parameter the notebook does not declare.
    DataError
        ``run_dir`` is not a finished run (no ``summary.json``).
    NotebookError
        The notebook failed (names the cell; the partial output is kept).
    """
    notebook_parameters(src, parameters)
    run = RunDir(parameters.get("run_dir", "runs/tutorial"))
    if not run.artefact("summary.json").exists():
        raise DataError("not a finished run (no summary.json): run `pcm run` first",
                        path=run.root)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        execute_notebook(Path(src), dst, dict(parameters), Path.cwd())
    except Exception as err:  # papermill, kernel death, ...
        raise NotebookError(failure_message(Path(src).name, err, dst)) from None
    if book_dir is not None:
        copy_notebooks(Path(book_dir), [dst])
    return dst

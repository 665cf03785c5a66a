"""Phase functions of the causally-informed baseline, reading/writing a run directory.

1. :func:`run_discovery`: PC1 per grid column on the (unshuffled) train split
   (PRECT log-transformed), batches of columns as dask tasks, each finished batch
   stored under ``checkpoints/causal_discovery`` -> ``RUN/causal_masks.nc`` with the
   link shares and, for the quantile rule, the candidate parents of every output at
   every candidate quantile q.
2. :func:`run_causal_training`: one causally-informed network per (output,
   candidate parent set), all trained as ONE stack; per output the network with the
   lowest validation loss is kept (the published per-output q search) ->
   ``RUN/models/causal.keras``; the chosen q and the parents are added to
   ``causal_masks.nc``. With the share rule there is one parent set per output.

Both add their wall seconds to ``RUN/seconds.json`` (keys ``causal_discovery`` and
``causal_training``; the latter is the whole q search, as the paper counts it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.baselines.causal.aggregation import (
    RULES,
    SHARE_FLOOR,
    boxcox_zscores,
    link_shares,
    quantile_grid,
    quantile_masks,
)
from pcm.baselines.causal.data import (
    lag1_autocorrelation,
    log_precipitation,
    read_column_series,
    series_problem,
)
from pcm.baselines.causal.discovery import aggregate_links, discover_columns, select_columns
from pcm.data.cbrain import sample_grid
from pcm.errors import DataError, ParameterError
from pcm.io import write_netcdf
from pcm.nn.saving import save_stacked
from pcm.nn.trainer import train_stacked
from pcm.params.config import CausalConfig
from pcm.run.rundir import RunDir
from pcm.variables import input_labels, output_labels

__all__ = [
    "CAUSAL_MASKS",
    "SECONDS",
    "run_discovery",
    "run_causal_training",
    "discovery_dataset",
    "lag1_autocorrelation",
    "candidate_networks",
    "parents_only_init",
]

#: Artefact of the discovery phase.
CAUSAL_MASKS = "causal_masks.nc"

#: Wall seconds per phase, merged by every phase that records them.
SECONDS = "seconds.json"


def discovery_dataset(found: np.ndarray, tested: np.ndarray, *, lat: np.ndarray,
                      lon: np.ndarray, weights: np.ndarray, seconds: np.ndarray,
                      pc_alpha: float, share: float, n_steps: int,
                      cpu_seconds: np.ndarray | None = None, rule: str = "share",
                      n_quantiles: int = 20) -> xr.Dataset:
    """Aggregate per-column links into the ``causal_masks.nc`` dataset.

    Parameters
    ----------
    found, tested : np.ndarray
        bool ``[column, 65, 94]`` from :func:`pcm.baselines.causal.discovery.discover_columns`.
    lat, lon, weights, seconds : np.ndarray
        Per column: latitude, longitude (degrees), area weight, tigramite wall
        seconds.
    pc_alpha, share : float
        Significance level and the share rule's threshold.
    n_steps : int
        Time steps per column.
    cpu_seconds : np.ndarray, optional
        Per column: tigramite CPU seconds (default: the wall seconds).
    rule : {"quantile", "share"}
        Aggregation rule (:mod:`pcm.baselines.causal.aggregation`).
    n_quantiles : int
        Quantile rule: candidate q values ``0, 1/n, ..., (n-1)/n``.

    Returns
    -------
    xr.Dataset
        Share rule: ``mask(output, input)`` bool and ``link_share`` (area-weighted
        over tested columns). Quantile rule: ``link_share`` (plain mean over all
        columns, floored at 1e-5), ``zscore(output, input)`` and
        ``candidate_mask(output, quantile, input)``; the ``mask`` is added by
        :func:`run_causal_training`. Both: ``tested_share``, per-column
        ``column_lat``, ``column_lon``, ``column_weight``, ``column_seconds``,
        ``column_cpu_seconds``, ``column_links``.
    """
    if rule not in RULES:
        raise ParameterError("causal_rule", f"must be one of {', '.join(RULES)}, got {rule!r}")
    if cpu_seconds is None:
        cpu_seconds = seconds
    w = np.asarray(weights, dtype=np.float64)
    tested_share = np.einsum("c,coi->oi", w, tested.astype(np.float64)) / max(w.sum(), 1e-300)
    outputs, inputs = output_labels(), input_labels()
    variables: dict = {}
    if rule == "share":
        mask, link_share = aggregate_links(found, tested, weights, share)
        variables["mask"] = (("output", "input"), mask, {
            "long_name": "causal mask: input (t-1) is a PC1 parent of output (t) in at "
                         "least `share` of the area-weighted columns", "units": "1"})
        variables["link_share"] = (("output", "input"), link_share, {
            "long_name": "area-weighted share of tested columns where the link was found",
            "units": "1"})
        method = "area-weighted share of the tested columns >= share"
    else:
        link_share = link_shares(found, tested)
        quantiles = quantile_grid(n_quantiles)
        variables["link_share"] = (("output", "input"), link_share, {
            "long_name": "share of all analysed columns where the link was found (constant "
                         "series count as no link), floored at 1e-5", "units": "1"})
        z = np.stack([boxcox_zscores(row) for row in link_share])
        variables["zscore"] = (("output", "input"), z, {
            "long_name": "z-score of the Box-Cox transformed link shares of the output "
                         "(-inf: no link in any column)", "units": "1"})
        variables["candidate_mask"] = (("output", "quantile", "input"),
                                       quantile_masks(link_share, quantiles), {
            "long_name": "candidate parents: zscore > -ppf(1 - quantile)", "units": "1"})
        method = ("plain share of all columns (floor 1e-5), Box-Cox, z-score > -ppf(1 - q); "
                  "q chosen per output by the validation loss of its network")
    variables.update({
        "tested_share": (("output", "input"), tested_share, {
            "long_name": "area-weighted share of columns where output and input vary "
                         "(link testable)", "units": "1"}),
        "column_lat": ("column", np.asarray(lat, dtype=np.float64),
                       {"long_name": "latitude of the column", "units": "degrees_north"}),
        "column_lon": ("column", np.asarray(lon, dtype=np.float64),
                       {"long_name": "longitude of the column", "units": "degrees_east"}),
        "column_weight": ("column", w, {"long_name": "area (Gaussian) weight of the column",
                                        "units": "1"}),
        "column_seconds": ("column", np.asarray(seconds, dtype=np.float64), {
            "long_name": "wall seconds of the tigramite PC1 call of the column", "units": "s"}),
        "column_cpu_seconds": ("column", np.asarray(cpu_seconds, dtype=np.float64), {
            "long_name": "CPU seconds of the tigramite PC1 call of the column", "units": "s"}),
        "column_links": ("column", (found & tested).sum(axis=(1, 2)).astype(np.int32),
                         {"long_name": "links found in the column", "units": "1"}),
    })
    coords = {"output": outputs, "input": inputs, "column": np.arange(found.shape[0])}
    if rule == "quantile":
        coords["quantile"] = ("quantile", quantile_grid(n_quantiles),
                              {"long_name": "candidate quantile q of the aggregation rule",
                               "units": "1"})
    return xr.Dataset(
        variables, coords=coords,
        attrs={
            "title": "Causal masks from PCMCI's PC1 stage (tigramite, ParCorr), per column, "
                     "aggregated over columns",
            "method": "PC-stable (PC1), ParCorr; candidate parents: the 94 inputs at lag 1 "
                      "(tau_min = tau_max = 1); PRECT log-transformed; " + method,
            "rule": rule,
            "pc_alpha": float(pc_alpha),
            "share": float(share),
            "share_floor": SHARE_FLOOR,
            "n_columns": int(found.shape[0]),
            "n_steps": int(n_steps),
        },
    )


def run_discovery(run: RunDir | str | os.PathLike, config: CausalConfig, *,
                  n_steps: int | None = None, n_jobs: int | None = None,
                  path: str | os.PathLike | None = None, batch_columns: int = 4,
                  progress: bool = False) -> xr.Dataset:
    """Causal discovery phase: PC1 per column, aggregated -> ``RUN/causal_masks.nc``.

    Parameters
    ----------
    run : RunDir or path-like
        Run directory with a data manifest.
    config : CausalConfig
        ``causal_pc_alpha``: significance level of PC1's partial-correlation tests
        (reference 0.01); ``causal_share``: keep a link found in at least this
        area-weighted share of the columns (reference 0.59); ``causal_columns``:
        columns analysed, evenly spread over the grid (deterministic), None: all
        columns (the reference setup; slow); ``seed`` rotates the longitudes of
        the column subset (same seed, same columns).
    n_steps : int, optional
        Leading time steps per column; None: ``config.causal_steps`` (None there: all
        of the train split).
    n_jobs : int, optional
        Workers of the local dask cluster (None: ``os.cpu_count()``; 1: serial, no
        cluster). Results do not depend on it.
    path : path-like, optional
        Unshuffled CBRAIN file to analyse instead of the train split.
    batch_columns : int
        Columns per dask task and per stored batch (``checkpoints/causal_discovery``;
        finished batches are not recomputed when the phase is run again).
    progress : bool
        Show a progress bar.

    Returns
    -------
    xr.Dataset
        The written ``causal_masks.nc`` (see :func:`discovery_dataset`); attrs
        also hold ``seconds`` (wall), ``seconds_per_column``,
        ``cpu_seconds_per_column`` (tigramite only), ``n_jobs`` and ``source``.
    """
    run = RunDir.of(run)
    pc_alpha, share = config.causal_pc_alpha, config.causal_share
    n_columns, seed = config.causal_columns, config.seed
    n_steps = config.causal_steps if n_steps is None else n_steps
    if not 0.0 < pc_alpha < 1.0:
        raise ParameterError("causal_pc_alpha", f"must lie in (0, 1), got {pc_alpha}")
    if not 0.0 <= share <= 1.0:
        raise ParameterError("causal_share", f"must lie in [0, 1], got {share}")
    if n_columns is not None and n_columns < 1:
        raise ParameterError("causal_columns", f"must be >= 1 or null (all), got {n_columns}")
    if config.causal_rule not in RULES:
        raise ParameterError("causal_rule", f"must be one of {', '.join(RULES)}, "
                             f"got {config.causal_rule!r}")
    if n_steps is not None and n_steps < 12:
        raise ParameterError("n_steps", f"must be >= 12 time steps or null (all), got {n_steps}")
    start = time.perf_counter()
    source = Path(path) if path is not None else run.data_path("train")
    if source is None:
        raise DataError("the manifest names no train split", path=run.manifest_path)
    grid = sample_grid(source)
    n_lat, n_lon = len(grid["lat"]), len(grid["lon"])
    columns = select_columns(n_lat, n_lon, n_columns, seed=seed)
    x, y, grid = read_column_series(source, columns, n_steps=n_steps)
    problem = series_problem(x)
    if problem:
        raise DataError(f"{problem} (pass one as path=...)", path=source)
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else int(n_jobs)
    results = discover_columns(x, log_precipitation(y), pc_alpha=pc_alpha, n_jobs=n_jobs,
                               scheduler=config.causal_scheduler, batch_columns=batch_columns,
                               checkpoint_dir=run.checkpoints("causal_discovery"),
                               progress=progress)
    found = np.stack([r.found for r in results])
    tested = np.stack([r.tested for r in results])
    col_seconds = np.array([r.seconds for r in results])
    col_cpu = np.array([r.cpu_seconds for r in results])
    ds = discovery_dataset(found, tested, lat=grid["lat"][columns[:, 0]],
                           lon=grid["lon"][columns[:, 1]],
                           weights=np.asarray(grid["gw"])[columns[:, 0]], seconds=col_seconds,
                           pc_alpha=pc_alpha, share=share, n_steps=x.shape[0],
                           cpu_seconds=col_cpu, rule=config.causal_rule,
                           n_quantiles=config.causal_quantiles)
    seconds = time.perf_counter() - start
    ds.attrs.update({"source": str(source), "seconds": seconds, "n_jobs": n_jobs,
                     "scheduler": config.causal_scheduler or "local cluster",
                     "seconds_per_column": float(col_seconds.mean()),
                     "cpu_seconds_per_column": float(col_cpu.mean()),
                     "grid_columns": int(n_lat * n_lon)})
    write_netcdf(ds, run.artefact(CAUSAL_MASKS))
    run.record_seconds(causal_discovery=seconds)
    return ds


def candidate_networks(causal: xr.Dataset) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The distinct candidate parent sets of every output, one network each.

    Parameters
    ----------
    causal : xr.Dataset
        ``causal_masks.nc`` of the discovery: ``candidate_mask(output, quantile,
        input)`` (quantile rule) or ``mask(output, input)`` (share rule).

    Returns
    -------
    targets : np.ndarray
        int ``[n_networks]``: the output of each network, ascending.
    masks : np.ndarray
        bool ``[n_networks, n_inputs]``: its parents.
    slots : list of np.ndarray
        Per network, the indices of the candidate quantiles that give this parent
        set (several q often select the same parents: one network serves them all).
    """
    if "candidate_mask" in causal:
        cand = causal["candidate_mask"].values.astype(bool)
    elif "mask" in causal:
        cand = causal["mask"].values.astype(bool)[:, None, :]
    else:
        raise DataError("expected candidate_mask(output, quantile, input) or mask(output, "
                        "input): run the causal discovery phase first", variable="mask")
    targets, masks, slots = [], [], []
    for o in range(cand.shape[0]):
        _, first, inverse = np.unique(cand[o], axis=0, return_index=True, return_inverse=True)
        for g in np.argsort(first):  # in order of the first (smallest) q of each set
            targets.append(o)
            masks.append(cand[o, first[g]])
            slots.append(np.flatnonzero(inverse.reshape(-1) == g))
    return np.array(targets), np.array(masks), slots


def parents_only_init(model, masks: np.ndarray) -> None:
    """Give each masked first kernel the Glorot scale of a parents-only network.

    A network whose first kernel ``W`` (94 x units) is multiplied by a fixed
    0/1 mask ``m`` computes ``W^T (m * x) = W_S^T x_S`` with ``S`` the parents: it
    IS the network with ``|S|`` inputs and first kernel ``W_S`` (the masked rows
    never act and get exactly zero gradient). Only the initialisation differs:
    Glorot uniform draws ``W`` from ``U(-a, a)``, ``a = sqrt(6 / (fan_in + units))``,
    with ``fan_in = 94`` here and ``|S|`` in the reference. Scaling each network's
    first kernel by ``a(|S|) / a(94)`` turns the draw into a ``U(-a(|S|), a(|S|))``
    one, so the stacked network is distributed exactly as the parents-only one.

    Parameters
    ----------
    model : pcm.nn.networks.StackedMLP
        Without input layer; its first kernel is rescaled in place.
    masks : np.ndarray
        bool ``[n_networks, n_inputs]``.
    """
    from pcm.nn.networks import glorot_limit

    first = model.dense[0]
    kernel = np.asarray(first.kernel)
    n_inputs, units = kernel.shape[1], kernel.shape[2]
    parents = np.asarray(masks, dtype=bool).sum(axis=1)
    scale = np.array([glorot_limit(max(int(k), 1), units) / glorot_limit(n_inputs, units)
                      for k in parents])
    first.kernel.assign((kernel * scale[:, None, None]).astype(kernel.dtype))


def run_causal_training(run: RunDir | str | os.PathLike, config: CausalConfig, *,
                        progress: bool = True) -> xr.Dataset:
    """The per-output q search: train the candidate networks, keep the best per output.

    Every output gets one network per distinct candidate parent set of the
    discovery (quantile rule: one per candidate q, identical sets shared; share
    rule: one). All of them are trained as ONE stacked model for
    ``causal_epochs`` epochs with the same trainer as the other model kinds; the
    first kernel of each is masked to its parents and initialised at the
    parents-only Glorot scale (:func:`parents_only_init`). Per output, the network
    with the lowest last-epoch validation loss is kept (the published q search);
    ties go to the smaller q (more parents). The kept networks are the final
    causally-informed networks: no retraining. An output without parents learns a
    constant.

    Writes ``models/causal.keras`` (65 networks), ``history_causal.nc`` (every
    candidate network), ``seconds.json["causal_training"]`` (the whole search), and
    adds ``mask(output, input)``, ``quantile(output)``, ``n_parents(output)`` and
    ``candidate_val_loss(output, quantile)`` to ``causal_masks.nc``. Resumes from
    ``checkpoints/causal``.

    Returns
    -------
    xr.Dataset
        The training history of the candidate networks (``network`` dimension).
    """
    from pcm.nn.networks import StackedMLP

    run = RunDir.of(run)
    start = time.perf_counter()
    path = run.artefact(CAUSAL_MASKS)
    if not path.exists():
        raise DataError("no causal discovery results: run the causal discovery phase first",
                        path=path)
    with xr.open_dataset(path) as ds:
        causal = ds.load()
    targets, masks, slots = candidate_networks(causal)
    n_out = causal.sizes["output"]
    train = config.train_config(hidden_units=config.hidden, epochs=config.causal_epochs)
    model = StackedMLP(len(targets), train.hidden_units, n_inputs=masks.shape[1],
                       input_layer=False, targets=targets.tolist(), seed=int(config.seed),
                       dtype=train.dtype_policy)
    model.set_mask(masks)
    parents_only_init(model, masks)
    x, y, xv, yv = run.training_data(train.max_train_samples, train.compute_dtype,
                                     in_memory=train.in_memory,
                                     memory_budget_mb=train.memory_budget_mb)
    hist = train_stacked(model, x, y, train, x_val=xv, y_val=yv, l1=0.0,
                         checkpoint_dir=run.checkpoints("causal"), desc="causal",
                         progress=progress)
    # early stopping (schedule plateau) restores each network's best epoch
    val = hist.val_loss.values.min(axis=0) if train.patience else hist.val_loss.values[-1]
    best = np.array([np.flatnonzero(targets == o)[np.argmin(val[targets == o])]
                     for o in range(n_out)])
    final = model.select(best)
    save_stacked(final, run.model("causal"))

    quantiles = causal["quantile"].values if "quantile" in causal.coords else None
    n_slots = 1 if quantiles is None else len(quantiles)
    slot_loss = np.full((n_out, n_slots), np.nan)
    for n, (o, s) in enumerate(zip(targets, slots, strict=True)):
        slot_loss[o, s] = val[n]
    chosen_q = np.full(n_out, np.nan) if quantiles is None else \
        np.array([quantiles[slots[b].min()] for b in best])
    mask = masks[best]
    seconds = time.perf_counter() - start + hist.attrs["seconds_previous_sessions"]
    causal["mask"] = (("output", "input"), mask, {
        "long_name": "parents of the output in its causally-informed network", "units": "1"})
    causal["n_parents"] = (("output",), mask.sum(axis=1).astype(np.int32),
                           {"long_name": "number of causal parents", "units": "1"})
    causal["quantile_chosen"] = (("output",), chosen_q, {
        "long_name": "quantile q of the aggregation rule chosen by the validation loss "
                     "(smallest q giving the chosen parents; NaN: share rule)", "units": "1"})
    if quantiles is not None:
        causal["candidate_val_loss"] = (("output", "quantile"), slot_loss, {
            "long_name": "last-epoch validation MSE of the network of each candidate q",
            "units": "1 (squared normalised output)"})
    causal.attrs.update({"selection": "lowest last-epoch validation loss per output",
                         "n_candidate_networks": int(len(targets)),
                         "causal_epochs": int(config.causal_epochs)})
    write_netcdf(causal, path)
    hist.attrs.update({"phase_seconds": seconds, "model_file": str(run.model("causal")),
                       "n_causal_links": int(mask.sum()),
                       "n_candidate_networks": int(len(targets))})
    write_netcdf(hist, run.artefact("history_causal.nc"))
    run.record_seconds(causal_training=seconds)
    return hist

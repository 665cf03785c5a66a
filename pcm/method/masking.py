"""Step 3 of the method: masking vectors, the per-output threshold search, the masks.

The masking vector of an output is the L2 norm of each input's row of its
pre-masking network's input kernel (length 94). A threshold ``t`` turns it into
a mask, ``mask = vector > t`` (strict). For every output the search tries the
reference grid::

    np.round(np.linspace(1e-4, np.percentile(vector, percentile), n_thresholds,
                         endpoint=False), 4)

(a value rounded to 0 becomes 1e-4, duplicates are dropped, so outputs may
have fewer than ``n_thresholds`` candidates; unused slots are NaN). The
reference used ``percentile=70`` (its threshold-search job scripts), which is
our default. Criteria:

``"val_loss"`` (default)
    train one masking network per (output, threshold) — all of them as ONE
    stacked model, each starting from its pre-masking hidden/output weights —
    for ``search_epochs`` and take the lowest validation loss (minimum over epochs).
``"train_loss"``
    the same networks, lowest last-epoch training loss: what the published
    models used.
``"proxy"``
    no training: the pre-masking networks themselves, with the inputs below the
    threshold zeroed (mask folded into the input kernel), scored on validation
    data. Seconds instead of a training run; see ``benchmarks/threshold_proxy.py``.
``"relative"``
    no search: the threshold is ``selection_ratio`` times the output's largest
    masking-vector entry (:func:`~pcm.method.thresholds.relative_thresholds`); the
    candidate table of ``thresholds.nc`` then holds that one threshold, without losses.
    Not in the paper; the experiments chapter compares it with the search.

Ties go to the larger threshold (the sparser mask). An empty mask is allowed:
the network then predicts a constant.

No retraining (``search_final``, the published pipeline; full "val_loss"/"train_loss"
search only): the search network at the chosen threshold IS the final masking
network. The stacks' weight checkpoints are then kept (a repeated search reloads
them), and the chosen networks are written to ``models/search_final.keras`` with their
search history (``history_search_final.nc``); :func:`pcm.method.finetune.run_finetune`
adopts them as ``models/pcmasking.keras`` instead of training.

Successive halving (``search_halving``, "val_loss"/"train_loss" only): instead of
training every candidate for ``search_epochs``, the epochs are split into rounds
(:func:`halving_rounds`: ``ceil(log2(candidates))`` rounds at most, the shorter ones
first); after each round but the last, only the better half of each output's
candidates (by the criterion so far, ties to the larger threshold) continue, from
their current weights, on the same learning-rate schedule and sample order (Adam's
moments restart each round). The survivors have trained ``search_epochs`` epochs, and
the threshold is chosen among them; ``epochs_trained`` in ``thresholds.nc`` says how
long each candidate ran. Measured against the full search in
``benchmarks/successive_halving.py``.

Resume: each stack of search networks checkpoints every epoch under
``checkpoints/threshold_search/stack_<k>/``; once finished only its losses are
kept (``history.nc``; the large weight checkpoint is deleted), so an
interrupted search resumes and a repeated one returns at once.

Artefacts: ``masking_vectors.nc`` (``masking_vector(output, input)``),
``thresholds.nc`` (``loss``, ``val_loss``, ``train_loss``, ``threshold_value``,
``n_inputs_kept`` on ``(output, threshold_index)``; ``threshold(output)``) and
``masks.nc`` (``mask(output, input)`` boolean, stored as int8 by netCDF).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.errors import DataError, ParameterError
from pcm.io import write_netcdf
from pcm.method.ranked_selection import knockoff_masks, ranking_vectors, screen_masks
from pcm.method.thresholds import (
    better_half,
    choose_thresholds,
    halving_rounds,
    masks_from_thresholds,
    relative_thresholds,
    threshold_table,
)
from pcm.nn.checkpoint import CHECKPOINT_FILE, load_state
from pcm.nn.engine import evaluate_stacked
from pcm.nn.saving import save_stacked, with_dtype
from pcm.nn.trainer import checkpoint_fingerprint, train_stacked
from pcm.params.config import SearchConfig
from pcm.run.rundir import MASK_FILES, RunDir
from pcm.variables import SPCAM, Catalogue

__all__ = [
    "CRITERIA",
    "masking_vectors_from_model",
    "compute_masking_vectors",
    "proxy_losses",
    "premask_index",
    "search_thresholds",
    "search_paper_rule",
    "search_files",
    "l1_masking_vectors",
    "loss_search",
]

#: Threshold criteria of :func:`search_thresholds`.
CRITERIA = ("val_loss", "train_loss", "proxy", "relative", "stability", "knockoff")

#: Criteria that search no candidate thresholds (one threshold per output, no losses).
NO_SEARCH = ("relative", "stability", "knockoff")

#: Losses of a finished search stack (its weight checkpoint is deleted).
SEARCH_HISTORY = "history.nc"

#: Model kind / history of the chosen search networks (``search_final``).
SEARCH_FINAL = "search_final"


def search_files(kind: str = "pcmasking") -> tuple[str, str, str]:
    """``(thresholds file, masks file, phase)`` of the threshold search of a model kind:
    ``thresholds.nc``, ``masks.nc``, ``threshold_search`` for the run's own selection,
    ``paper_rule_thresholds.nc``, ``paper_rule_masks.nc``, ``paper_rule_search`` for the
    paper's rule beside it. The phase names the checkpoints and ``seconds.json``'s key."""
    if kind == "pcmasking":
        return "thresholds.nc", MASK_FILES[kind][0], "threshold_search"
    if kind not in MASK_FILES or kind == "causal":
        raise ParameterError("kind", f"no threshold search for model kind {kind!r}; expected "
                             "pcmasking or paper_rule")
    return f"{kind}_thresholds.nc", MASK_FILES[kind][0], f"{kind}_search"


def _vector_array(values: np.ndarray, outputs: list[str], inputs: list[str],
                  source: str) -> xr.DataArray:
    return xr.DataArray(
        np.asarray(values, dtype=np.float64), dims=("output", "input"),
        coords={"output": np.array(outputs), "input": np.array(inputs)},
        name="masking_vector",
        attrs={"long_name": "masking vector: L2 norm of each input's row of the "
                            "pre-masking input kernel",
               "units": "1", "source": source})


def masking_vectors_from_model(model, catalogue: Catalogue = SPCAM) -> xr.DataArray:
    """Masking vectors of a pre-masking stacked model, ``masking_vector(output, input)``.

    Network ``n`` gives the row of output ``model.targets[n]``; ``catalogue``
    (the run's) names inputs and outputs.
    """
    outputs = catalogue.output_labels()
    return _vector_array(model.masking_vectors(), [outputs[t] for t in model.targets],
                         catalogue.input_labels(), "pre-masking model")


def compute_masking_vectors(run: RunDir, config: SearchConfig | None = None, *,
                            progress: bool = False) -> xr.DataArray:
    """Masking vectors of ``models/premask.keras``; written to ``RUN/masking_vectors.nc``.

    ``config.ranking`` (default ``row_norm``, the L2 row norms of the input kernel)
    chooses what ranks the inputs (:mod:`pcm.method.ranking`; the other rankings are
    computed by :func:`pcm.method.ranked_selection.ranking_vectors`). The attribute
    ``ranking`` of the file names it.
    """
    t0 = time.perf_counter()
    ranking = "row_norm" if config is None else config.ranking
    vectors = masking_vectors_from_model(run.load_model("premask"), run.catalogue)
    if ranking != "row_norm":
        values = ranking_vectors(run, config, progress=progress)
        vectors = vectors.copy(data=values).assign_attrs(
            long_name=f"input ranking ({ranking}) of each output", source=ranking)
    vectors.attrs["ranking"] = ranking
    write_netcdf(vectors.to_dataset(), run.artefact("masking_vectors.nc"))
    run.record_seconds(masking_vectors=time.perf_counter() - t0)
    return vectors


def premask_index(premask, n_outputs: int) -> np.ndarray:
    """Position in the stacked pre-masking model of the network of each output ``0..n-1``."""
    where = {t: n for n, t in enumerate(premask.targets)}
    missing = [o for o in range(n_outputs) if o not in where]
    if missing:
        raise DataError(f"the pre-masking model has no network for outputs {missing}")
    return np.array([where[o] for o in range(n_outputs)])


def _cached_history(folder: Path, fingerprint: str) -> xr.Dataset | None:
    """History of a finished search stack with the same fingerprint, else None."""
    path = folder / SEARCH_HISTORY
    if not path.exists():
        return None
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except (OSError, ValueError):
        return None
    return ds if ds.attrs.get("fingerprint") == fingerprint else None


def _chunks(n: int, size: int | None) -> list[np.ndarray]:
    size = n if not size else int(size)
    return [np.arange(lo, min(n, lo + size)) for lo in range(0, n, size)]


def proxy_losses(premask, masks: np.ndarray, networks: np.ndarray, x_valid: np.ndarray,
                 y_valid: np.ndarray, *, compute_dtype: str = "float32",
                 stack: int | None = None) -> np.ndarray:
    """The ``"proxy"`` criterion: validation MSE of pre-masking networks with inputs zeroed.

    Parameters
    ----------
    premask : pcm.nn.networks.StackedMLP
        The pre-masking model.
    masks : array of bool ``(candidates, n_inputs)``
        One mask per candidate.
    networks : array of int ``(candidates,)``
        The pre-masking network each candidate masks.
    x_valid, y_valid : array
        Normalised validation data.
    compute_dtype : str
        Dtype policy of the evaluation.
    stack : int, optional
        Evaluate at most this many candidates at once (memory).

    Returns
    -------
    numpy.ndarray
        Validation MSE per candidate.
    """
    losses = np.empty(len(networks))
    for chunk in _chunks(len(networks), stack):
        model = with_dtype(premask.select(networks[chunk]), compute_dtype)
        model.set_mask(masks[chunk])
        losses[chunk] = evaluate_stacked(model, x_valid, y_valid)
    return losses


def _halving_stack(model, outputs: np.ndarray, thresholds: np.ndarray, arrays: tuple,
                   config, criterion: str, folder: Path, desc: str,
                   progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Successive halving of one stack of search networks.

    Returns last-epoch training loss, validation loss (minimum over the epochs trained),
    epochs trained per network, and seconds spent by earlier sessions (or, for a
    finished stack read from ``folder``, its whole training time).
    """
    x, y, xv, yv = arrays
    counts = np.unique(outputs, return_counts=True)[1]
    rounds = halving_rounds(int(counts.max()), config.epochs)
    fingerprint = json.dumps({**checkpoint_fingerprint(model, x, y, xv, yv, config, 0.0),
                              "halving": rounds}, sort_keys=True)
    cached = _cached_history(folder, fingerprint)
    if cached is not None:
        return (cached.train_loss.values, cached.val_loss.values,
                cached.epochs_trained.values, float(cached.attrs["seconds"]))
    n = model.n_networks
    train, val = np.full(n, np.nan), np.full(n, np.inf)
    trained = np.zeros(n, dtype=np.int32)
    alive, current, start, earlier, seconds = np.arange(n), model, 0, 0.0, 0.0
    for r, epochs in enumerate(rounds):
        hist = train_stacked(current, x, y, replace(config, epochs=start + epochs), x_val=xv,
                             y_val=yv, l1=0.0, checkpoint_dir=folder / f"round_{r}",
                             desc=f"{desc} (halving round {r + 1}/{len(rounds)}, "
                                  f"{len(alive)} networks)", progress=progress,
                             first_epoch=start)
        earlier += hist.attrs["seconds_previous_sessions"]
        seconds += hist.attrs["seconds"]
        start += epochs
        train[alive] = hist.loss.values[-1]
        val[alive] = np.minimum(val[alive], hist.val_loss.values.min(axis=0))
        trained[alive] = start
        if r < len(rounds) - 1:
            score = (train if criterion == "train_loss" else val)[alive]
            keep = better_half(outputs[alive], thresholds[alive], score)
            alive, current = alive[keep], current.select(keep)
    val[~np.isfinite(val)] = np.nan
    write_netcdf(xr.Dataset({"train_loss": ("network", train), "val_loss": ("network", val),
                             "epochs_trained": ("network", trained)},
                            attrs={"fingerprint": fingerprint, "seconds": seconds,
                                   "rounds": rounds}), folder / SEARCH_HISTORY)
    for r in range(len(rounds)):  # the round checkpoints hold weights: large, not needed
        shutil.rmtree(folder / f"round_{r}", ignore_errors=True)
    return train, val, trained, earlier


def _save_search_final(run: RunDir, stacks: dict, chunks: list[np.ndarray],
                       out_idx: np.ndarray, thr_idx: np.ndarray, chosen: np.ndarray,
                       masks: np.ndarray) -> None:
    """Write the search network of each output's chosen threshold as one 65-network model."""
    from pcm.nn.networks import StackedMLP

    n_out = len(chosen)
    where = []  # (stack, position in the stack) of each output's chosen candidate
    for o in range(n_out):
        c = int(np.flatnonzero((out_idx == o) & (thr_idx == chosen[o]))[0])
        k = next(k for k, chunk in enumerate(chunks) if c in chunk)
        where.append((k, int(np.flatnonzero(chunks[k] == c)[0])))
    first = stacks[where[0][0]][0]
    model = StackedMLP(n_out, first.hidden_units, n_inputs=first.n_inputs, input_layer=False,
                       negative_slope=first.negative_slope, seed=first.seed,
                       dtype=first.dtype_policy)
    for layer, dense in enumerate(model.dense):
        kernel, bias = np.asarray(dense.kernel).copy(), np.asarray(dense.bias).copy()
        for o, (k, i) in enumerate(where):
            src = stacks[k][0].dense[layer]
            kernel[o], bias[o] = np.asarray(src.kernel[i]), np.asarray(src.bias[i])
        dense.kernel.assign(kernel)
        dense.bias.assign(bias)
    model.set_mask(masks)
    if not np.array_equal(model.get_mask(),
                          np.stack([stacks[k][0].get_mask()[i] for k, i in where])):
        raise DataError("internal: the chosen search networks do not carry the chosen masks")
    save_stacked(model, run.model(SEARCH_FINAL))
    hist = xr.concat([stacks[k][1].isel(network=[i]) for k, i in where], dim="network",
                     data_vars="minimal", coords="minimal", compat="override")
    hist = hist.drop_vars([v for v in ("best_epoch",) if v in hist])
    hist = hist.assign_coords(network=np.arange(n_out))
    hist.attrs.update({"phase": SEARCH_FINAL,
                       "note": "search history of the network kept at each output's chosen "
                               "threshold (no retraining)"})
    write_netcdf(hist, run.artefact(f"history_{SEARCH_FINAL}.nc"))


def l1_masking_vectors(run: RunDir) -> xr.DataArray:
    """The L2 row norms of the pre-masking networks' input layer (the paper's masking
    vectors), whatever ranking the run selects with: ``masking_vectors.nc`` where it holds
    them, else computed from ``models/premask.keras`` (nothing is written)."""
    if run.artefact("masking_vectors.nc").exists():
        vectors = run.masking_vectors()
        if vectors.attrs.get("ranking", "row_norm") == "row_norm":
            return vectors
    return masking_vectors_from_model(run.load_model("premask"), run.catalogue)


def loss_search(run: RunDir) -> xr.Dataset:
    """The run's threshold search on the L1 masking vectors (:func:`l1_masking_vectors`):
    ``thresholds.nc`` where the run ranks by ``row_norm``, else the paper's rule beside it
    (``paper_rule_thresholds.nc``)."""
    for kind in ("pcmasking", "paper_rule"):
        path = run.artefact(search_files(kind)[0])
        if path.exists():
            with xr.open_dataset(path) as ds:
                if ds.attrs.get("ranking", "row_norm") == "row_norm":
                    return ds.load()
    raise DataError("no threshold search on the L1 masking vectors: the run ranks inputs by "
                    "another ranking and ran without paper_rule: true",
                    path=run.artefact("thresholds.nc"))


def search_paper_rule(run: RunDir, config: SearchConfig, *,
                      progress: bool = True) -> xr.Dataset:
    """The paper's rule beside the run's own selection (parameter ``paper_rule``).

    :func:`search_thresholds` with :meth:`~pcm.params.config.SearchConfig.paper_rule_config`
    on the same pre-masking networks, written to ``paper_rule_thresholds.nc`` and
    ``paper_rule_masks.nc``; the run's own ``masking_vectors.nc``, ``thresholds.nc``
    and ``masks.nc`` are left as they are.
    """
    return search_thresholds(run, config.paper_rule_config(), kind="paper_rule",
                             progress=progress)


def search_thresholds(run: RunDir, config: SearchConfig, *, kind: str = "pcmasking",
                      progress: bool = True) -> xr.Dataset:
    """Pick a threshold per output and write ``thresholds.nc`` and ``masks.nc``.

    Parameters
    ----------
    run : RunDir
        Needs ``models/premask.keras`` (and ``masking_vectors.nc``, computed if absent).
    config : SearchConfig
        ``n_thresholds`` and ``threshold_percentile`` give the candidate grid (see
        :func:`threshold_grid`; reference 20 and 70); ``selection`` scores a
        candidate (module docstring); ``search_epochs`` trains each search network
        (not used by "proxy" and "relative"; ``selection_ratio`` is the share of the
        largest entry that "relative" cuts at); ``search_stack`` trains the (output, threshold)
        networks in stacks of at most this many (default one stack; results do not
        depend on it); ``selection_tolerance`` > 0 picks the largest threshold whose
        loss is within that relative tolerance of the lowest (parsimony rule, see
        :func:`choose_thresholds`); the rest is the optimisation of the search networks.
    kind : {"pcmasking", "paper_rule"}
        Whose masks: the run's own (default), or the paper's rule beside them
        (:func:`search_files` names the artefacts; ranking ``row_norm`` only, and
        ``masking_vectors.nc`` is not rewritten).
    progress : bool
        Progress bar and per-epoch lines on stderr.

    Returns
    -------
    xarray.Dataset
        The content of ``thresholds.nc``.
    """
    criterion = config.selection
    n_thresholds, percentile = config.n_thresholds, config.threshold_percentile
    compute_dtype, selection_tolerance = config.compute_dtype, config.selection_tolerance
    if criterion not in CRITERIA:
        raise ParameterError("selection", f"the threshold criterion must be one of {CRITERIA}, "
                             f"got {criterion!r}")
    if not selection_tolerance >= 0:
        raise ParameterError("selection_tolerance", f"must be >= 0, got {selection_tolerance!r}")
    keep_final = bool(config.search_final)
    if keep_final and (criterion in ("proxy", *NO_SEARCH) or config.search_halving):
        raise ParameterError("search_final", "keeping the search networks needs a full "
                             "training search (selection val_loss or train_loss, "
                             "search_halving false)")
    if criterion == "stability" and config.ranking != "stability":
        raise ParameterError("selection", "selection stability cuts the selection frequency: "
                             "it needs ranking: stability")
    thresholds_file, masks_file, phase = search_files(kind)
    if kind != "pcmasking" and (config.ranking != "row_norm" or keep_final):
        raise ParameterError("ranking", f"the {kind} search ranks by row_norm and fine-tunes "
                             f"(got ranking {config.ranking!r}, search_final {keep_final})")
    t0 = time.perf_counter()
    vectors = None
    if kind != "pcmasking":  # the row norms; the run's own vectors stay as they are
        vectors = l1_masking_vectors(run)
    elif run.artefact("masking_vectors.nc").exists():
        vectors = run.masking_vectors()
        if vectors.attrs.get("ranking", "row_norm") != config.ranking:
            vectors = None  # another ranking: compute the one asked for
    if vectors is None:
        vectors = compute_masking_vectors(run, config, progress=progress)
    knockoff = None
    if criterion in NO_SEARCH:
        if criterion == "relative":
            single = relative_thresholds(vectors.values, config.selection_ratio)
            note = "the relative threshold"
        elif criterion == "stability":  # keep frequency >= share
            single = np.full(vectors.sizes["output"], float(config.stability_share) - 1e-9)
            note = "stability_share on the selection frequency"
        else:
            knockoff = knockoff_masks(run, config, progress=progress)
            single = np.full(vectors.sizes["output"], np.nan)
            note = "none on the masking vector (knockoff cut on W in knockoff_threshold)"
        table = xr.DataArray(single[:, None], dims=("output", "threshold_index"),
                             coords={"output": vectors["output"].values, "threshold_index": [0]},
                             name="threshold_value",
                             attrs={"long_name": f"{note} (no candidates searched)",
                                    "units": "1"})
    else:
        table = threshold_table(vectors, n_thresholds, percentile)
    values = table.values
    if knockoff is not None:  # one candidate per output, its mask the knockoff selection
        values = np.where(np.isnan(values), -np.inf, values)
    out_idx, thr_idx = np.nonzero(~np.isnan(values))
    cand = values[out_idx, thr_idx]
    masks = vectors.values[out_idx] > cand[:, None]
    training = criterion in ("val_loss", "train_loss")
    if knockoff is not None:
        masks = knockoff[0][out_idx]
    if criterion not in NO_SEARCH:  # these rules need neither the model nor losses
        premask = run.load_model("premask")
        net_idx = premask_index(premask, vectors.sizes["output"])[out_idx]

    val = np.full(values.shape, np.nan)
    train = np.full(values.shape, np.nan)
    stacks: dict[int, tuple] = {}  # search_final: stack -> (model, history)
    epochs_trained = np.full(values.shape, np.nan)
    halving = bool(config.search_halving) and training
    earlier = 0.0  # training seconds spent by earlier (interrupted) sessions
    chunks = _chunks(len(cand), config.search_stack)
    if criterion == "proxy":
        dtype = "float64" if compute_dtype == "float64" else "float32"
        xv, yv = run.split_data("valid", max_samples=config.max_samples, dtype=dtype,
                                in_memory=config.data_in_memory,
                                memory_budget_mb=config.data_memory_budget_mb)
        val[out_idx, thr_idx] = proxy_losses(premask, masks, net_idx, xv, yv,
                                             compute_dtype=compute_dtype,
                                             stack=config.search_stack)
    elif training:
        train_config = config.train_config(hidden_units=premask.hidden_units,
                                           epochs=config.search_epochs, fixed=True)
        x, y, xv, yv = run.training_data(config.max_samples, compute_dtype,
                                         in_memory=config.data_in_memory,
                                         memory_budget_mb=config.data_memory_budget_mb)
        for k, chunk in enumerate(chunks):
            model = with_dtype(premask.to_masking(masks[chunk], indices=net_idx[chunk]),
                               compute_dtype)
            desc = "threshold search" + (f" {k + 1}/{len(chunks)}" if len(chunks) > 1 else "")
            folder = run.checkpoints(phase) / f"stack_{k:03d}"
            fingerprint = json.dumps(checkpoint_fingerprint(model, x, y, xv, yv, train_config,
                                                            0.0), sort_keys=True)
            if halving:
                t_loss, v_loss, done, spent = _halving_stack(
                    model, out_idx[chunk], cand[chunk], (x, y, xv, yv), train_config,
                    criterion, folder, desc, progress)
                earlier += spent
                train[out_idx[chunk], thr_idx[chunk]] = t_loss
                val[out_idx[chunk], thr_idx[chunk]] = v_loss
                epochs_trained[out_idx[chunk], thr_idx[chunk]] = done
                continue
            epochs_trained[out_idx[chunk], thr_idx[chunk]] = config.search_epochs
            hist = _cached_history(folder, fingerprint)
            if hist is not None and keep_final:
                # the chosen networks are needed: reload the stack's trained weights
                state = load_state(folder, json.loads(fingerprint))
                if state is None:
                    hist = None  # weights deleted by an earlier search: train again
                else:
                    for w, var in enumerate(model.weights):
                        var.assign(state[f"weight_{w}"])
            if hist is None:
                hist = train_stacked(model, x, y, train_config, x_val=xv, y_val=yv, l1=0.0,
                                     checkpoint_dir=folder, desc=desc, progress=progress,
                                     labels=run.catalogue.output_labels())
                earlier += hist.attrs["seconds_previous_sessions"]
                write_netcdf(hist.assign_attrs(fingerprint=fingerprint),
                             folder / SEARCH_HISTORY)
                if not keep_final:
                    # keep only the losses: the weights of the search networks are not
                    # needed and their checkpoint is large (20 x the pre-masking model)
                    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
            else:
                earlier += hist.attrs["seconds"]
            if keep_final:
                stacks[k] = (model, hist)
            train[out_idx[chunk], thr_idx[chunk]] = hist.loss.values[-1]
            val[out_idx[chunk], thr_idx[chunk]] = hist.val_loss.values.min(axis=0)
    loss = train if criterion == "train_loss" else val
    # successive halving: choose among the candidates that trained every epoch
    eligible = ~halving | (epochs_trained == config.search_epochs)
    chosen = choose_thresholds(np.where(eligible, loss, np.nan), values, selection_tolerance)
    rows = np.arange(values.shape[0])
    threshold = values[rows, chosen]
    kept = np.full(values.shape, np.nan)
    kept[out_idx, thr_idx] = masks.sum(axis=1)
    final = masks_from_thresholds(vectors, threshold)
    if knockoff is not None:
        final = final.copy(data=knockoff[0])
        threshold = np.full(len(threshold), np.nan)
    pvalues = None
    if config.screen != "none":
        screened, pvalues = screen_masks(run, config, final.values)
        final = final.copy(data=screened)
    if keep_final:
        _save_search_final(run, stacks, chunks, out_idx, thr_idx, chosen, final.values)
    seconds = time.perf_counter() - t0 + earlier

    dims = ("output", "threshold_index")
    loss_units = "1 (squared normalised output)"
    ds = xr.Dataset(
        {
            "loss": (dims, loss, {"long_name": f"search criterion ({criterion}) per candidate",
                                  "units": loss_units}),
            "val_loss": (dims, val, {"long_name": "validation MSE per candidate (min over "
                                                  "epochs; proxy: pre-masking net, masked)",
                                     "units": loss_units}),
            "train_loss": (dims, train, {"long_name": "last-epoch training MSE per candidate",
                                         "units": loss_units}),
            "threshold_value": table.assign_attrs(percentile=float(percentile)),
            "n_inputs_kept": (dims, kept, {"long_name": "inputs above the candidate threshold",
                                           "units": "1"}),
            "epochs_trained": (dims, epochs_trained, {
                "long_name": "epochs the search network of the candidate trained "
                             "(successive halving stops the worse half early)", "units": "1"}),
            "threshold": (("output",), threshold,
                          {"long_name": "chosen threshold on the masking vector", "units": "1"}),
            "chosen_index": (("output",), chosen.astype(np.int32),
                             {"long_name": "threshold_index of the chosen threshold",
                              "units": "1"}),
        },
        attrs={"criterion": criterion, "n_thresholds": int(n_thresholds),
               "percentile": float(percentile), "search_epochs": int(config.search_epochs),
               "ties": "larger threshold", "selection_tolerance": float(selection_tolerance),
               "successive_halving": int(halving), "search_final": int(keep_final),
               "seconds": seconds,
               "grid": "round(linspace(1e-4, percentile(vector, p), n, endpoint=False), 4), "
                       "unique" if criterion not in NO_SEARCH
                       else f"{config.selection_ratio:g} * max(vector) (relative rule)"
                       if criterion == "relative" else f"none ({criterion})",
               "ranking": config.ranking, "screen": config.screen},
    )
    if knockoff is not None:
        ds["knockoff_statistic"] = (("output", "input"), knockoff[1], {
            "long_name": "knockoff statistic W: masking-vector entry of the input minus that "
                         "of its knockoff", "units": "1",
            "train_samples": knockoff[3][0], "valid_samples": knockoff[3][1]})
        ds["knockoff_threshold"] = (("output",), knockoff[2], {
            "long_name": f"knockoff{'+' if config.knockoff_plus else ''} cut on W at FDR "
                         f"{config.knockoff_fdr:g} (inf: nothing selected)", "units": "1"})
        ds = ds.assign_coords(input=vectors["input"].values)
    if pvalues is not None:
        ds["screen_pvalue"] = (("output", "input"), pvalues, {
            "long_name": "p-value of the input's last partial F-test in the screen (NaN: "
                         "not tested)", "units": "1"})
        ds = ds.assign_coords(input=vectors["input"].values)
    write_netcdf(ds, run.artefact(thresholds_file))
    masks_ds = final.to_dataset()
    masks_ds["threshold"] = ds["threshold"]
    rule = {"knockoff": f"knockoff selection W >= knockoff_threshold ({thresholds_file})"}.get(
        criterion, "mask = masking_vector > threshold")
    masks_ds.attrs = {"criterion": criterion, "ranking": config.ranking, "screen": config.screen,
                      "rule": rule + ("" if config.screen == "none" else
                                      f", then the {config.screen} screen at alpha "
                                      f"{config.screen_alpha:g}, minimum share "
                                      f"{config.screen_min_share:g}")}
    write_netcdf(masks_ds, run.artefact(masks_file))
    run.record_seconds(**{phase: seconds})
    return ds

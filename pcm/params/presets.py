"""Run parameters of the pipeline: their schema, defaults and the three presets.

Every knob of ``pcm run`` is declared once in :data:`PARAMETERS` (type, default,
allowed values, help text). A preset is a small dict of overrides of those
defaults; a params YAML file and ``--set key=value`` override the preset
(:func:`pcm.params.run_parameters.resolve_parameters`), and each step of the method builds its
configuration object from the result (:mod:`pcm.params.config`). Nested keys are written
with a dot (``data.train``); a notebook declares them with an underscore (``data_train``).

The sizes of the ``ci`` and ``tutorial`` presets are tuned by measurement:
change them only in :data:`PRESETS` below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcm.data.splits import split_steps
from pcm.errors import ParameterError, did_you_mean

__all__ = ["Parameter", "PARAMETERS", "PRESETS", "PAPER_RULE", "SCREEN_ALL", "METHODS",
           "preset", "validate", "flatten", "notebook_name", "parameters_markdown"]


@dataclass(frozen=True)
class Parameter:
    """Declaration of one run parameter.

    Parameters
    ----------
    kind : {"int", "float", "str", "path", "bool"}
        Expected type (an int is accepted where a float is expected).
    default : object
        Value used when neither preset nor user sets it.
    help : str
        One-line description (shown in errors and in the book).
    choices : tuple, optional
        Allowed values (for ``str``).
    minimum, maximum : float, optional
        Inclusive bounds (for numbers).
    optional : bool
        Whether ``None`` (YAML ``null``) is allowed.
    check : callable, optional
        Extra check ``value -> str | None`` returning an error message.
    """

    kind: str
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    check: Callable[[Any], str | None] | None = None


def _finite(value: float) -> str | None:
    return None if math.isfinite(value) else "must be finite"


#: All run parameters, by dotted name.
PARAMETERS: dict[str, Parameter] = {
    "seed": Parameter("int", 0, "random seed of data, initialisation and sampling", minimum=0),
    # -- data ---------------------------------------------------------------
    "data.source": Parameter("str", "synthetic", "where the data come from (climsim: a "
                             "folder written by pcm data climsim)",
                             choices=("synthetic", "spcam", "climsim")),
    "data.steps": Parameter("int", 96, "synthetic: half-hourly time steps (train+valid+test)",
                            minimum=6),
    "data.n_lat": Parameter("int", None, "synthetic: latitudes (default 64, T42)", minimum=2,
                            maximum=64, optional=True),
    "data.n_lon": Parameter("int", None, "synthetic: longitudes (default 128, T42)", minimum=2,
                            maximum=128, optional=True),
    "data.world": Parameter("int", 0, "synthetic: the physics (0: the aquaplanet; 1-99 "
                            "development and 100-199 held-out worlds, each drawn from its "
                            "seed: pcm.data.synthetic.worlds)", minimum=0, maximum=199),
    "data.train": Parameter("path", None, "spcam: training file (CBRAIN layout)", optional=True),
    "data.valid": Parameter("path", None, "spcam: validation file", optional=True),
    "data.test": Parameter("path", None, "spcam: test file", optional=True),
    "data.norm": Parameter("path", None, "spcam: normalisation file", optional=True),
    "data.plus4K": Parameter("path", None, "spcam: +4K test file (optional)", optional=True),
    "data.minus4K": Parameter("path", None, "spcam: -4K test file (optional)", optional=True),
    "data.dir": Parameter("path", None, "climsim: folder written by pcm data climsim (train.nc "
                          "valid.nc test.nc norm.nc)", optional=True),
    "max_samples": Parameter("int", None, "cap on training samples (null: all)", minimum=1,
                             optional=True),
    "data.in_memory": Parameter("str", "auto", "hold a split in memory (true), stream it from "
                                "disk in shuffled windows (false), or stream only the splits "
                                "larger than data.memory_budget_mb (auto)",
                                choices=("auto", "true", "false")),
    "data.memory_budget_mb": Parameter("float", 8192.0, "memory budget of a split's "
                                       "normalised arrays (MB): auto streams larger splits, "
                                       "and it sizes the shuffle windows of a streamed one",
                                       minimum=1.0, check=_finite),
    "devices": Parameter("int", None, "devices of one training (tf.distribute."
                         "MirroredStrategy when > 1; null: every GPU, one device without)",
                         minimum=1, optional=True),
    # -- networks and training ---------------------------------------------
    "hidden_layers": Parameter("int", 9, "hidden layers per network", minimum=1, maximum=64),
    "hidden_units": Parameter("int", 256, "units per hidden layer", minimum=1, maximum=4096),
    "epochs": Parameter("int", 9, "epochs of the pre-masking and unconstrained phases",
                        minimum=1),
    "finetune_epochs": Parameter("int", 9, "epochs of the masking (fine-tuning) phase",
                                 minimum=1),
    "batch_size": Parameter("int", 1024, "mini-batch size", minimum=1),
    "learning_rate": Parameter("float", 1e-3, "initial Adam learning rate", minimum=1e-12,
                               maximum=1.0, check=_finite),
    "lr_divisor": Parameter("float", 5.0, "learning rate divided by this ...", minimum=1.0),
    "lr_every": Parameter("int", 3, "... every this many epochs", minimum=1),
    "schedule": Parameter("str", "step", "learning-rate schedule of every trained model "
                          "(step: lr_divisor every lr_every epochs for the phase's epochs; "
                          "plateau: lr_divisor after plateau_patience epochs without a lower "
                          "validation loss, early stopping after stop_patience, at most "
                          "max_epochs)", choices=("step", "plateau")),
    "plateau_patience": Parameter("int", 2, "plateau: epochs without a lower validation loss "
                                  "before the learning rate is divided", minimum=1),
    "plateau_min_delta": Parameter("float", 1e-3, "plateau: relative decrease of the summed "
                                   "validation loss that counts as lower", minimum=0.0,
                                   maximum=1.0),
    "stop_patience": Parameter("int", 5, "plateau: a network has converged (and stops) after "
                               "this many epochs without a lower validation loss", minimum=1),
    "max_epochs": Parameter("int", 60, "plateau: epoch cap of every phase (pre-masking, "
                            "unconstrained, fine-tuning, causally-informed)", minimum=1),
    "compute_dtype": Parameter("str", "float32", "compute precision of training",
                               choices=("float32", "bfloat16")),
    "l1": Parameter("float", 1e-3, "lambda, weight of the L1 penalty on the input layer",
                    minimum=0.0, check=_finite),
    # -- threshold search ----------------------------------------------------
    "n_thresholds": Parameter("int", 20, "candidate thresholds per output", minimum=1,
                              maximum=200),
    "threshold_percentile": Parameter("float", 70.0, "upper end of the threshold grid: this "
                                      "percentile of the masking vector", minimum=0.0,
                                      maximum=100.0),
    "search_epochs": Parameter("int", 1, "epochs trained per candidate threshold", minimum=1),
    "search_stack": Parameter("int", None, "train the (output, threshold) search networks in "
                              "stacks of at most this many (memory; null: one stack)",
                              minimum=1, optional=True),
    "search_halving": Parameter("bool", False, "successive halving: train all candidate "
                                "thresholds briefly, continue only the better half per "
                                "output, round after round (cheaper search)"),
    "search_final": Parameter("bool", False, "the search network at the chosen threshold is "
                              "the final masking network (no fine-tuning; the published "
                              "pipeline)"),
    "selection": Parameter("str", "val_loss", "criterion that picks the threshold "
                           "(proxy: no training, score the pre-masking nets with inputs zeroed; "
                           "relative: no search, selection_ratio of the largest entry)",
                           choices=("val_loss", "train_loss", "proxy", "relative",
                                    "stability", "knockoff")),
    "selection_tolerance": Parameter("float", 0.0, "parsimony: the largest threshold whose "
                                     "loss is within this relative tolerance of the best "
                                     "(0: the reference rule)", minimum=0.0, maximum=10.0),
    "selection_ratio": Parameter("float", 0.3, "relative selection: keep the inputs whose "
                                 "masking-vector entry exceeds this share of the output's "
                                 "largest entry", minimum=0.0, maximum=1.0),
    "ranking": Parameter("str", "row_norm", "what ranks the inputs (the masking vector): L2 "
                         "norm of the input-kernel row, |gradient x input| or |integrated "
                         "gradients| of the pre-masking network, reweighted (adaptive) L1, "
                         "the selection frequency of stability selection, or the order in "
                         "which the conditional screen eliminates the inputs (screen)",
                         choices=("row_norm", "gradient_input", "integrated_gradients",
                                  "adaptive_l1", "stability", "screen")),
    "ranking_samples": Parameter("int", 2048, "gradient rankings: validation samples "
                                 "averaged", minimum=1),
    "ranking_steps": Parameter("int", 16, "integrated gradients: steps of the path from the "
                               "baseline (0, the normalised mean)", minimum=1, maximum=256),
    "adaptive_gamma": Parameter("float", 1.0, "adaptive L1: penalty weight of an input "
                                "(largest row norm / its row norm) ** gamma", minimum=0.0,
                                maximum=4.0),
    "stability_runs": Parameter("int", 8, "stability: pre-masking networks per output (one "
                                "stack, own initial weights and random penalty weights)",
                                minimum=2, maximum=64),
    "stability_weakness": Parameter("float", 0.5, "stability: penalty weights are drawn "
                                    "uniformly in [weakness, 1] per input and run "
                                    "(randomised lasso; 1: no reweighting)", minimum=0.05,
                                    maximum=1.0),
    "stability_share": Parameter("float", 0.6, "selection stability: keep the inputs selected "
                                 "(relative rule at selection_ratio) in at least this share "
                                 "of the runs", minimum=0.0, maximum=1.0),
    "knockoff_fdr": Parameter("float", 0.1, "selection knockoff: target false-discovery rate "
                              "of the model-X knockoff filter", minimum=0.001, maximum=0.9),
    "knockoff_plus": Parameter("bool", True, "selection knockoff: the knockoff+ threshold "
                               "(offset 1, controls the FDR; false: offset 0, more power)"),
    "screen": Parameter("str", "none", "conditional screen after the selection: drop a kept "
                        "input whose quadratic partial F-test given the other kept inputs is "
                        "not significant", choices=("none", "partial_correlation")),
    "screen_alpha": Parameter("float", 0.01, "screen: significance level of the partial "
                              "F-test", minimum=1e-12, maximum=0.5),
    "screen_min_share": Parameter("float", 0.0, "screen: also drop a kept input while dropping "
                                  "it loses less than this share of the output's variance "
                                  "(an effect size; 0: the significance level alone)",
                                  minimum=0.0, maximum=0.5),
    "screen_samples": Parameter("int", 20000, "screen: training samples used", minimum=10),
    "paper_rule": Parameter("bool", False, "also select masks by the paper's rule (L1 row "
                            "norms, lowest last-epoch training loss over 20 thresholds up to "
                            "the 70th percentile) from the same pre-masking networks, and "
                            "fine-tune, evaluate and explain them beside the run's own"),
    # -- causally-informed comparison (PCMCI) -------------------------------
    "causal": Parameter("bool", True, "also train the causally-informed networks (PC1 of "
                        "PCMCI per column; needs >= 12 training time steps)"),
    "causal_pc_alpha": Parameter("float", 0.01, "significance level of the PC1 tests",
                                 minimum=1e-6, maximum=0.5),
    "causal_share": Parameter("float", 0.59, "keep a link found in at least this "
                              "area-weighted share of the columns", minimum=0.0, maximum=1.0),
    "causal_columns": Parameter("int", 64, "grid columns analysed (null: all, slow)",
                                minimum=1, optional=True),
    "causal_steps": Parameter("int", None, "leading training time steps of each column "
                              "analysed by PC1 (null: the whole train split)", minimum=12,
                              optional=True),
    "causal_rule": Parameter("str", "quantile", "links -> parents: the published quantile "
                             "rule (Box-Cox z-score of the link shares, q searched per "
                             "output) or a fixed share of columns", choices=("quantile", "share")),
    "causal_quantiles": Parameter("int", 20, "quantile rule: candidate q per output, "
                                  "0, 1/n, ..., (n-1)/n (reference 20)", minimum=1,
                                  maximum=100),
    "causal_epochs": Parameter("int", 18, "epochs of the causally-informed networks "
                               "(reference 18)", minimum=1),
    "causal_scheduler": Parameter("str", None, "address of a dask scheduler for the discovery "
                                  "(null: a local cluster of processes)", optional=True),
    # -- evaluation ------------------------------------------------------------
    "eval_samples": Parameter("int", None, "cap on test samples for R2 (null: all)",
                              minimum=1, optional=True),
    "shap_background": Parameter("int", 100, "SHAP background samples", minimum=1),
    "shap_samples": Parameter("int", 100, "samples explained by SHAP", minimum=1),
}

#: Training time steps that causal discovery needs (pcm.baselines.causal.run_discovery).
MIN_CAUSAL_STEPS = 12

#: Paths that a ``spcam`` run must name.
REQUIRED_SPCAM = ("data.train", "data.valid", "data.test", "data.norm")

#: Files that the ``data.dir`` of a ``climsim`` run must hold (``pcm data climsim --out``).
CLIMSIM_FILES = ("train.nc", "valid.nc", "test.nc", "norm.nc")

#: The paper's selection rule (overrides): the lowest last-epoch training loss of search
#: networks over 20 thresholds up to the 70th percentile of the L1 row norms (the published
#: threshold-search scripts). ``paper_rule: true`` applies it beside a run's own selection
#: (:meth:`pcm.params.config.SearchConfig.paper_rule_config`); ``pcm worlds`` names it
#: ``paper``.
PAPER_RULE: dict[str, Any] = {"ranking": "row_norm", "selection": "train_loss",
                              "n_thresholds": 20, "threshold_percentile": 70.0,
                              "screen": "none"}

#: The selection chosen across worlds (``pcm worlds`` method ``screen_all``; chosen on
#: development worlds 1-12, evaluated on held-out worlds; docs/architecture.md, "Selections
#: across worlds"): every input that varies, ranked by the order in which the conditional
#: screen eliminates them, kept while dropping it would lose at least 0.5 % of the output's
#: variance.
SCREEN_ALL: dict[str, Any] = {"ranking": "screen", "selection": "relative",
                              "selection_ratio": 0.0, "screen": "partial_correlation",
                              "screen_min_share": 0.005}

#: The built-in methods of ``pcm worlds`` (named parameter overrides). ``paper``: the published
#: selection rule (lowest last-epoch training loss of search networks over 20 thresholds up to the
#: 70th percentile), here with the preset's search epochs and a fine-tuned final network;
#: ``relative``: keep inputs above ``selection_ratio`` of the output's largest entry; ``val_loss``:
#: the search by validation loss (the default rule); ``screen_all``: every input that varies,
#: ranked by the order in which the conditional screen eliminates them (``ranking: screen``),
#: selected by the screen with an effect-size stop (an input stays only if dropping it loses at
#: least 0.5 % of the output's variance). The selection of ``screen_all`` was chosen on development
#: worlds 1-12 alone, from the masking vectors of finished runs (selection ratios 0-0.1,
#: significance levels 1e-4 to 1e-15 and shares 0.001-0.02), and its ranking on the same worlds
#: (docs/architecture.md, "Selections across worlds").
METHODS: dict[str, dict[str, Any]] = {
    "paper": dict(PAPER_RULE),
    "relative": {"selection": "relative"},
    "val_loss": {"selection": "val_loss"},
    "screen_all": dict(SCREEN_ALL),
}

#: Overrides of the defaults, per preset. The single place to tune sizes.
PRESETS: dict[str, dict[str, Any]] = {
    # Whole pipeline in about 2 minutes on 2 cores (tests, nbval references). Small, but
    # trained long enough (12 pre-masking epochs) for the masks to be sparse.
    "ci": {
        "data.steps": 96, "data.n_lat": 8, "data.n_lon": 16,
        "hidden_layers": 2, "hidden_units": 32,
        "epochs": 12, "finetune_epochs": 4, "batch_size": 128, "lr_every": 4,
        "n_thresholds": 10, "threshold_percentile": 90.0, "search_epochs": 1,
        "shap_background": 64, "shap_samples": 64,
        "causal": True, "causal_columns": 16, "causal_quantiles": 5, "causal_epochs": 12,
    },
    # What `make book` runs, sized for its 15-minute budget on 2 cores (on 2026-12-05 the
    # pipeline took 7.8 to 12.9 min and `make book` 13.6 to 15.9 min with the venv in place
    # on the earlier machines, 3.5 and 5.0 min on an AVX-512 one; see README), with the
    # causally-informed baseline side by side on EVERY column: an 8 x 4 grid (the
    # aquaplanet is zonally symmetric, so latitudes matter more than longitudes) of 600
    # half-hour steps, 420 of them for training (13,440 samples), and PC1 on the first 168
    # training steps of each of the 32 columns. 900 steps (20,160 samples) took 9.8 min for
    # the pipeline alone and 18.9 min for `make book` (measured 2026-12-03); the 16 x 32 x
    # 240 grid before it took 20.7 min with discovery on only 32 of its 512 columns.
    # Batches of 128 give 1,260 optimizer steps in 12 epochs, and the learning rate is
    # divided every 6 epochs instead of 4 (mask F1 on world 0, a development world, at 900
    # steps: 0.38 against 0.36 with lr_every 4). The masks: SCREEN_ALL (no threshold grid),
    # and beside it the paper's rule (PAPER_RULE: 20 thresholds up to the 70th percentile)
    # with one-epoch search networks. 3 quantiles and 8 epochs for the causally-informed q
    # search (5 and 12 put it over budget).
    "tutorial": {
        "data.steps": 600, "data.n_lat": 8, "data.n_lon": 4,
        "hidden_layers": 3, "hidden_units": 64,
        "epochs": 12, "finetune_epochs": 4, "batch_size": 128, "lr_every": 6,
        "search_epochs": 1,
        "shap_background": 100, "shap_samples": 100,
        "causal": True, "causal_columns": None, "causal_steps": 168, "causal_quantiles": 3,
        "causal_epochs": 8,
        # The selection that won on development worlds and held on held-out ones
        # (SCREEN_ALL), with the paper's rule computed beside it from the same
        # pre-masking networks.
        **SCREEN_ALL, "paper_rule": True,
    },
    # Real data: the 99-step ClimSim sample converted by `pcm data climsim` (38,016
    # samples of 184 inputs and 128 outputs); 6.1 min measured on 2 idle cores. The data are
    # snapshots, so there is no causally-informed baseline (it needs time series).
    "climsim": {
        "data.source": "climsim",
        "hidden_layers": 3, "hidden_units": 64,
        "epochs": 12, "finetune_epochs": 4, "batch_size": 256, "lr_every": 4,
        "n_thresholds": 10, "threshold_percentile": 90.0, "search_epochs": 1,
        "shap_background": 64, "shap_samples": 64,
        "causal": False,
    },
    # ClimSim at the size its own baselines train on, for GPUs: ClimSim's subset
    # (pcm data climsim --climsim-subset: every 7th step of 0001-02...0008-01 for train,
    # 0008-02...0009-01 for valid, 0009-03...0010-02 for test; 10.1 M training samples,
    # 12.6 GB as float32), the paper's network size, batches of 4096 over all devices
    # (MirroredStrategy), the splits streamed from disk past data.memory_budget_mb.
    # pcm run --preset climsim-full --dry-run prints samples, disk, memory and time.
    "climsim-full": {
        "data.source": "climsim",
        "hidden_layers": 9, "hidden_units": 256,
        "epochs": 9, "finetune_epochs": 9, "batch_size": 4096, "lr_every": 3,
        "n_thresholds": 20, "threshold_percentile": 70.0, "search_epochs": 1,
        "eval_samples": 1_000_000,
        "shap_background": 1000, "shap_samples": 1000,
        "causal": False,
    },
    # The published configuration (for a GPU): masks selected by the lowest last-epoch
    # training loss of 9-epoch search networks over 20 thresholds up to the 70th
    # percentile; the causally-informed networks on every grid column, q searched per
    # output over 0, 0.05, ..., 0.95, 18 epochs.
    "paper": {
        "data.steps": 192,
        "hidden_layers": 9, "hidden_units": 256,
        "epochs": 9, "finetune_epochs": 9, "batch_size": 1024,
        "n_thresholds": 20, "threshold_percentile": 70.0, "search_epochs": 9,
        "selection": "train_loss", "search_final": True,
        "shap_background": 1000, "shap_samples": 1000,
        "causal_columns": None, "causal_rule": "quantile", "causal_quantiles": 20,
        "causal_epochs": 18,
    },
}


def notebook_name(key: str) -> str:
    """Name of a parameter inside a notebook (``data.train`` -> ``data_train``)."""
    return key.replace(".", "_")


def preset(name: str) -> dict[str, Any]:
    """Defaults merged with the overrides of preset ``name`` (flat dotted keys)."""
    if name not in PRESETS:
        raise ParameterError("preset", f"unknown preset {name!r}; choose one of "
                             f"{', '.join(PRESETS)}")
    values = {key: p.default for key, p in PARAMETERS.items()}
    values.update(PRESETS[name])
    return values


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to dotted keys (``{"data": {"train": P}}`` -> ``data.train``)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not value:
                raise ParameterError(name, "empty mapping")
            flat.update(flatten(value, prefix=name + "."))
        else:
            flat[name] = value
    return flat


def _check_one(key: str, value: Any) -> Any:
    """Validate and normalise one value; return it (paths as str)."""
    if key not in PARAMETERS:
        close = did_you_mean(key, PARAMETERS)
        close = close or next((k for k in PARAMETERS
                               if k.split(".")[-1] == key.split(".")[-1]), None)
        hint = f" (did you mean {close!r}?)" if close else ""
        raise ParameterError(key, f"unknown parameter{hint}; known: {', '.join(PARAMETERS)}")
    p = PARAMETERS[key]
    if value is None:
        if p.optional:
            return None
        raise ParameterError(key, f"must not be null ({p.help})")
    kind = p.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(key, f"expected an integer, got {value!r} ({p.help})")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(key, f"expected a number, got {value!r} ({p.help})")
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ParameterError(key, f"expected true or false, got {value!r}")
    elif kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            raise ParameterError(key, f"expected a {'path' if kind == 'path' else 'string'}, "
                                 f"got {value!r} ({p.help})")
    if p.choices is not None and value not in p.choices:
        close = did_you_mean(value, p.choices) if isinstance(value, str) else None
        hint = f" (did you mean {close!r}?)" if close else ""
        raise ParameterError(key, f"must be one of {', '.join(map(str, p.choices))}, "
                             f"got {value!r}{hint}")
    if p.minimum is not None and value < p.minimum:
        raise ParameterError(key, f"must be >= {p.minimum:g}, got {value!r}")
    if p.maximum is not None and value > p.maximum:
        raise ParameterError(key, f"must be <= {p.maximum:g}, got {value!r}")
    if p.check is not None:
        problem = p.check(value)
        if problem:
            raise ParameterError(key, f"{problem}, got {value!r}")
    return value


def validate(values: Mapping[str, Any], *, base_dir: str | Path | None = None) -> dict[str, Any]:
    """Check a complete flat parameter set; return it normalised.

    Parameters
    ----------
    values : mapping
        Dotted keys -> values (defaults + preset + file + overrides).
    base_dir : path-like, optional
        Relative data paths are resolved against this directory (the params
        file's folder); default the current directory.

    Returns
    -------
    dict
        The same keys; floats as float, data paths absolute strings.

    Raises
    ------
    ParameterError
        Naming the first offending key: unknown, wrong type, out of range,
        missing or non-existent data file.
    """
    out = {key: _check_one(key, value) for key, value in values.items()}
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    source = out.get("data.source", "synthetic")
    paths = [k for k, p in PARAMETERS.items() if p.kind == "path"]
    if source == "climsim":
        if out.get("data.dir") is None:
            raise ParameterError("data.dir", "required when data.source is climsim "
                                 f"({PARAMETERS['data.dir'].help})")
        for key in paths:
            if key != "data.dir" and out.get(key) is not None:
                raise ParameterError(key, "not used when data.source is climsim (the files "
                                     "are those of data.dir)")
        folder = Path(out["data.dir"]).expanduser()
        folder = folder if folder.is_absolute() else base / folder
        missing = [f for f in CLIMSIM_FILES if not (folder / f).is_file()]
        if missing:
            raise ParameterError("data.dir", f"{folder} lacks {', '.join(missing)} (write it "
                                 "with: pcm data climsim --src DIR --out DIR)")
        out["data.dir"] = str(folder.resolve())
        # ClimSim data are snapshots: pcm.params.run_parameters.check_causal_feasibility
        # switches the causally-informed baseline off, with one notice, before anything runs.
    elif source == "spcam":
        for key in REQUIRED_SPCAM:
            if out.get(key) is None:
                raise ParameterError(key, "required when data.source is spcam "
                                     f"({PARAMETERS[key].help})")
        for key in paths:
            if out.get(key) is None:
                continue
            if key == "data.dir":
                raise ParameterError(key, "only used when data.source is climsim")
            path = Path(out[key]).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                raise ParameterError(key, f"file not found: {path}")
            out[key] = str(path.resolve())
    else:
        for key in paths:
            if out.get(key) is not None:
                wanted = "climsim" if key == "data.dir" else "spcam"
                raise ParameterError(key, f"only used when data.source is {wanted} "
                                     f"(set data.source: {wanted})")
        if out.get("causal") and "data.steps" in out:
            train = split_steps(out["data.steps"])["train"]
            if train.stop - train.start < MIN_CAUSAL_STEPS:
                raise ParameterError("causal", "causal discovery needs at least "
                                     f"{MIN_CAUSAL_STEPS} training time steps; data.steps="
                                     f"{out['data.steps']} gives {train.stop - train.start} "
                                     "(raise data.steps or set causal: false)")
    return out


def _parameters_table(names: list[str]) -> list[str]:
    lines = ["| parameter | meaning | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for key, p in PARAMETERS.items():
        values = []
        for name in names:
            value = PRESETS[name].get(key, p.default)
            values.append("–" if value is None else f"`{value}`".replace("`True`", "`true`")
                          .replace("`False`", "`false`"))
        lines.append(f"| `{key}` | {p.help} | " + " | ".join(values) + " |")
    return lines


def parameters_markdown() -> str:
    """Markdown tables of every parameter: meaning and value in each preset.

    Two tables, the synthetic presets and the ClimSim ones, so that each fits the
    book's text column.
    """
    climsim = [n for n in PRESETS if PRESETS[n].get("data.source") == "climsim"]
    synthetic = [n for n in PRESETS if n not in climsim]
    lines = ["**Synthetic presets**", "", *_parameters_table(synthetic)]
    if climsim:
        lines += ["", "**ClimSim presets**", "", *_parameters_table(climsim)]
    return "\n".join(lines) + "\n"

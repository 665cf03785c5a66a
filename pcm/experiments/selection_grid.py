"""Selections recomputed from finished ``pcm worlds`` points, with no training.

The grid of ``docs/architecture.md`` ("How `screen_all` was chosen"): for each point (a
finished run directory under ``OUT/points``), its masking vectors are cut by the
relative rule at each ratio (0: every input with a positive entry), and each cut is
screened by :func:`pcm.method.selection.partial_f_screen` on the point's screen sample
(:func:`pcm.method.ranked_selection.screen_sample`), stopped either by a significance
level alone or by a minimum share of the output's variance (at the point's own
``screen_alpha``, as ``screen_all`` screens). The elimination path does not depend on
the stop, so it is walked once per cut (:func:`pcm.method.selection.elimination_ranking`
records it) and every stop replays it. Each mask is scored against the world's true
drivers (:func:`pcm.analysis.scoring.mask_scores`).

Run it on development worlds only: it is how a selection is chosen. For example::

    from pathlib import Path
    from pcm.experiments.selection_grid import grid_medians, selection_grid

    points = sorted(Path("DEV_DIR/points").glob("world-*_gi_relative0.3_screen"))
    print(grid_medians(selection_grid(points)).to_string())
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import xarray as xr

from pcm.analysis.scoring import mask_scores
from pcm.errors import PCMError
from pcm.experiments.sweep import POINT_FILE
from pcm.io import read_json
from pcm.method.ranked_selection import screen_sample
from pcm.method.selection import elimination_ranking, partial_f_screen
from pcm.method.thresholds import masks_from_thresholds, relative_thresholds
from pcm.params.config import SearchConfig
from pcm.run.rundir import RunDir

__all__ = ["RATIOS", "ALPHAS", "SHARES", "selection_grid", "grid_medians"]

#: Ratios of the relative rule that cut the masking vectors before the screen.
RATIOS = (0.3, 0.1, 0.05, 0.02, 0.0)
#: Significance levels that stop the screen (alone).
ALPHAS = (1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12, 1e-15)
#: Minimum shares of the output's variance that stop the screen.
SHARES = (0.001, 0.002, 0.005, 0.01, 0.02)

_SCORES = {
    "strong_f1": "F1 of the mask against the strong drivers (macro mean over outputs)",
    "precision": "precision of the mask against the true drivers",
    "recall": "recall of the mask against the true drivers",
    "f1": "F1 of the mask against the true drivers",
    "strong_recall": "recall of the strong drivers",
    "strong_precision": "precision of the mask against the strong drivers",
    "inputs_kept": "inputs kept per output (mean)",
}


def _point(path: Path) -> tuple[RunDir, dict, xr.DataArray]:
    """A finished point, its parameters and its world's true drivers; one line naming what
    is missing otherwise."""
    run = RunDir(path)
    try:
        params = read_json(path / POINT_FILE)["params"]
    except (OSError, ValueError, KeyError):
        raise PCMError(
            f"{path}: not a finished pcm worlds point (no readable {POINT_FILE} "
            "with its parameters)"
        ) from None
    for name in ("masking_vectors.nc", "masks.nc"):
        if not (path / name).is_file():
            raise PCMError(f"{path}: not a finished point (no {name})")
    drivers = run.drivers()
    if drivers is None:
        raise PCMError(f"{path}: no true drivers (a synthetic world's run is needed)")
    return run, params, drivers


def selection_grid(
    points: Iterable[str | os.PathLike],
    *,
    ratios: Sequence[float] = RATIOS,
    alphas: Sequence[float] = ALPHAS,
    shares: Sequence[float] = SHARES,
) -> xr.Dataset:
    """Score every relative cut followed by every screen stop, on each point's world.

    Parameters
    ----------
    points : iterable of path-like
        Finished ``pcm worlds`` points (``OUT/points/world-W_METHOD``) of synthetic worlds.
    ratios, alphas, shares : sequence of float
        The relative rule's ratios; the significance levels and the minimum shares that
        stop the screen.

    Returns
    -------
    xr.Dataset
        One row per (point, ratio, stop): coordinates ``world``, ``method``, ``ratio``,
        ``stop`` (``"alpha"`` or ``"share"``), ``value``; the scores of :data:`_SCORES`.

    Raises
    ------
    PCMError
        A point that is not finished, or not of a synthetic world (one line).
    """
    rows = []
    for path in map(Path, points):
        run, params, drivers = _point(path)
        strength = run.driver_strength()
        config = SearchConfig.from_parameters(params)
        x, y = screen_sample(run, config)
        vectors = run.masking_vectors()
        for ratio in ratios:
            cut = masks_from_thresholds(vectors, relative_thresholds(vectors.values, ratio))
            elimination_ranking(x, y, cut.values)  # records the path the stops replay
            stops = [("alpha", a, a, 0.0) for a in alphas]
            stops += [("share", s, config.screen_alpha, s) for s in shares]
            for stop, value, alpha, share in stops:
                mask, _ = partial_f_screen(x, y, cut.values, alpha, share)
                rows.append(
                    {
                        "world": int(params["data.world"]),
                        "method": path.name,
                        "ratio": float(ratio),
                        "stop": stop,
                        "value": float(value),
                        **mask_scores(cut.copy(data=mask), drivers, strength),
                    }
                )
    if not rows:
        raise PCMError(
            "no points given: expected finished pcm worlds points (OUT/points/world-W_METHOD)"
        )
    table = xr.Dataset.from_dataframe(pd.DataFrame(rows).rename_axis("row"))
    table = table.set_coords(["world", "method", "ratio", "stop", "value"])
    for name, long_name in _SCORES.items():
        table[name].attrs = {"long_name": long_name, "units": "1"}
    table["value"].attrs = {
        "long_name": "significance level or minimum share that stops the screen",
        "units": "1",
    }
    table["ratio"].attrs = {
        "long_name": "ratio of the relative rule before the screen",
        "units": "1",
    }
    return table


def grid_medians(table: xr.Dataset) -> pd.DataFrame:
    """Per (ratio, stop, value): medians over the points, and the worst point's strong-driver
    F1 and precision (the table of ``docs/architecture.md``)."""
    frame = table.reset_coords().to_dataframe()
    groups = frame.groupby(["ratio", "stop", "value"])
    medians = groups[["strong_f1", "precision", "inputs_kept"]].median()
    worst = groups[["strong_f1", "precision"]].min().add_suffix("_worst")
    return pd.concat([medians, worst, groups.size().rename("points")], axis=1)

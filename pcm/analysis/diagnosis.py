"""Why a masking vector ranks badly: proxies of true drivers, and drivers left unused.

:func:`pcm.analysis.scoring.ranking_scores` says *how well* a masking vector ranks
the true drivers of an output above its non-drivers; this module says *why* it does
not rank them perfectly. It counts, for every output, the strong drivers a network
did not use at all: entries no larger than the median entry of the output's
non-drivers (the level that the L1 penalty leaves for inputs it switched off). Among
the strong drivers it did use, it looks at the inputs that a threshold keeping them
all must also keep — the non-drivers whose entry exceeds the weakest used strong
driver's ("ranked ahead") — and asks of each whether it is a **proxy**: an input that
a linear combination of the output's true drivers explains to at least ``proxy_cut``
(R² over the training columns), so that a network fits the output about as well
through it (boundary-layer humidity at 957 hPa for that at 976 hPa). A non-driver
ahead that is not a proxy carries information the drivers lack, which cannot help
on data where the output is a function of its drivers plus independent noise: the
network picked it up from the noise of a finite sample. The same question is asked
of every unused strong driver: do the inputs the network uses explain it (a
*stand-in*)?

R² of input ``j`` on a set ``S`` of inputs follows from the correlation matrix ``R``:
``R²(j | S) = r_jS^T pinv(R_SS) r_Sj`` (pseudo-inverse: collinear sets work too).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pcm.analysis.scoring import STRONG_CUT, align, strong_drivers
from pcm.errors import DataError

__all__ = ["input_correlation", "explained_share", "ranking_failures", "PROXY_CUT"]

#: Smallest R² of a non-driver on an output's true drivers that makes it a proxy.
PROXY_CUT = 0.9


def input_correlation(x: np.ndarray, labels: list[str]) -> xr.DataArray:
    """Pearson correlation between the inputs, ``correlation(input, input_b)``.

    Parameters
    ----------
    x : numpy.ndarray
        ``[n_samples, n_inputs]`` inputs (any affine normalisation: it does not
        change a correlation).
    labels : list of str
        The ``n_inputs`` input labels.

    Returns
    -------
    xr.DataArray
        float64, in [-1, 1]; a constant input correlates 0 with everything, itself
        included.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(labels) or x.shape[0] < 2:
        raise DataError(f"expected inputs [n >= 2, {len(labels)}], got shape {x.shape}",
                        variable="inputs")
    centred = x - x.mean(axis=0)
    norm = np.sqrt((centred**2).sum(axis=0))
    unit = centred / np.where(norm > 0, norm, np.inf)  # a constant input: zeros
    corr = np.clip(unit.T @ unit, -1.0, 1.0)
    return xr.DataArray(corr, dims=("input", "input_b"),
                        coords={"input": labels, "input_b": labels}, name="correlation",
                        attrs={"long_name": "Pearson correlation between inputs",
                               "units": "1"})


def explained_share(corr: np.ndarray, targets: np.ndarray, by: np.ndarray) -> np.ndarray:
    """R² of each input in ``targets`` regressed linearly on the inputs ``by``.

    Parameters
    ----------
    corr : numpy.ndarray
        ``[n_inputs, n_inputs]`` correlation matrix (:func:`input_correlation`).
    targets, by : numpy.ndarray
        Index arrays of inputs.

    Returns
    -------
    numpy.ndarray
        One R² in [0, 1] per target; 0 when ``by`` is empty.
    """
    targets, by = np.asarray(targets, dtype=int), np.asarray(by, dtype=int)
    if by.size == 0:
        return np.zeros(targets.size)
    cross = corr[np.ix_(by, targets)]  # [by, targets]
    coef = np.linalg.pinv(corr[np.ix_(by, by)], hermitian=True) @ cross
    return np.clip((cross * coef).sum(axis=0), 0.0, 1.0)


def ranking_failures(vectors: xr.DataArray, drivers: xr.DataArray, strength: xr.DataArray,
                     correlation: xr.DataArray, *, proxy_cut: float = PROXY_CUT,
                     strong_cut: float = STRONG_CUT) -> xr.Dataset:
    """Per output: unused strong drivers, and the non-drivers ranked ahead of used ones.

    Parameters
    ----------
    vectors : xr.DataArray ``(output, input)``
        Masking vectors (larger: more likely a driver).
    drivers : xr.DataArray, bool ``(output, input)``
        True drivers.
    strength : xr.DataArray ``(output, input)``
        Driver strength (:func:`pcm.data.synthetic.generator.driver_strength`).
    correlation : xr.DataArray ``(input, input_b)``
        From :func:`input_correlation`.
    proxy_cut : float
        Smallest R² (:func:`explained_share`) that makes a proxy or a stand-in.
    strong_cut : float
        Smallest strength of a strong driver.

    Returns
    -------
    xr.Dataset
        On ``output`` (outputs without strong drivers or without non-drivers are
        dropped): ``n_strong``; ``n_strong_unused``, strong drivers whose entry is no
        larger than the median non-driver entry (no threshold keeps them without
        keeping half the non-drivers); ``n_unused_stand_in``, those of them that the
        used inputs (entries above that median) explain to R² >= ``proxy_cut``;
        ``n_ahead``, non-drivers whose entry exceeds that of the weakest *used*
        strong driver; ``n_proxy_ahead``, those of them that the output's true
        drivers explain to R² >= ``proxy_cut``; ``top_intruder``, the label of the
        highest-ranked non-driver ahead ("" if none), and ``top_intruder_r2``, its
        R² on the true drivers.
    """
    vectors, drivers = align(vectors, drivers)
    strong = strong_drivers(drivers, strength, strong_cut).values
    truth = drivers.values.astype(bool)
    inputs = list(vectors["input"].values)
    corr = correlation.sel(input=inputs, input_b=inputs).values
    values = np.asarray(vectors.values, dtype=np.float64)
    rows = np.flatnonzero(strong.any(axis=1) & (~truth).any(axis=1))
    names = {
        "n_strong": "strong drivers",
        "n_strong_unused": "strong drivers at or below the median non-driver entry",
        "n_unused_stand_in": f"of those, explained by the used inputs (R2 >= {proxy_cut:g})",
        "n_ahead": "non-drivers ranked above the weakest used strong driver",
        "n_proxy_ahead": f"of those, proxies (R2 >= {proxy_cut:g} on the true drivers)",
        "top_intruder": "highest-ranked non-driver above the weakest used strong driver",
        "top_intruder_r2": "its R2 on the output's true drivers",
    }
    res: dict[str, list] = {k: [] for k in names}
    for i in rows:
        v, t, s = values[i], truth[i], strong[i]
        active = v > np.median(v[~t])  # the inputs the network uses
        used, unused = s & active, np.flatnonzero(s & ~active)
        ahead = (np.flatnonzero(~t & (v > v[used].min())) if used.any()
                 else np.array([], dtype=int))
        proxy_r2 = explained_share(corr, ahead, np.flatnonzero(t))
        stand_in = [explained_share(corr, [j], np.flatnonzero(active & (np.arange(v.size) != j)))
                    [0] for j in unused]
        res["n_strong"].append(int(s.sum()))
        res["n_strong_unused"].append(unused.size)
        res["n_unused_stand_in"].append(int((np.asarray(stand_in) >= proxy_cut).sum()))
        res["n_ahead"].append(ahead.size)
        res["n_proxy_ahead"].append(int((proxy_r2 >= proxy_cut).sum()))
        top = int(np.argmax(v[ahead])) if ahead.size else None
        res["top_intruder"].append(inputs[ahead[top]] if top is not None else "")
        res["top_intruder_r2"].append(float(proxy_r2[top]) if top is not None else np.nan)
    ds = xr.Dataset({k: ("output", np.asarray(res[k]), {"long_name": names[k], "units": "1"})
                     for k in names},
                    coords={"output": vectors["output"].values[rows]})
    ds["top_intruder"].attrs.pop("units")
    ds.attrs.update(proxy_cut=float(proxy_cut), strong_cut=float(strong_cut))
    return ds

"""Normalisation of inputs and outputs, exactly as the reference implementation.

* Inputs: ``(x - mean) / max(max - min, std_by_var)`` per column, where
  ``mean min max`` are per column (``var_names``) and ``std_by_var`` is the
  standard deviation of a variable pooled over all its levels and samples
  (``var_names_single``). This is CBRAIN's ``InputNormalizer(sub="mean",
  div="maxrs")``.
* Outputs: multiplied by the catalogue's ``output_scale`` per variable
  (:data:`pcm.variables.OUTPUT_SCALE` for SPCAM: energy-like units, W/kg and
  W/m2 / 1000); no mean removed.

The catalogue (SPCAM, ClimSim) is the one the data file records; a norm file
computed by :func:`compute_norm` records it too, and a foreign norm file
without it is SPCAM.

Real norm files are taken as they are: extra variables are ignored, and the
mean is *not* assumed to lie within [min, max] (the published SPCAM norm file
violates it for some TBP levels and PS). A column whose scale is zero
(a constant input) is divided by 1 instead, so it normalises to 0.

Zero-variance outputs (``std == 0`` or ``max == min`` in the norm file, e.g.
PHQ above about 140 hPa in SPCAM, where the physics never moistens) are kept:
their normalised value stays 0, training fits them trivially, and R2 is
reported as NaN for them. Loading such a norm file emits a
:class:`ZeroVarianceWarning` naming the file and the outputs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.data.cbrain import (
    case_hint,
    column_labels,
    decode_names,
    file_catalogue,
    iter_rows,
    nonfinite_error,
    read_var_names,
)
from pcm.errors import DataError
from pcm.io import write_netcdf
from pcm.variables import SPCAM, Catalogue

__all__ = [
    "ZeroVarianceWarning",
    "MAX_ABS_NORMALIZED",
    "compute_norm",
    "norm_from_moments",
    "write_norm",
    "read_norm",
    "Normalization",
]

#: ``pcm data check --norm`` rejects a norm file when a normalised input exceeds
#: this magnitude: the data lie 100 ranges outside the norm's span, so norm file
#: and data do not belong together (or units differ).
MAX_ABS_NORMALIZED = 100.0

_STATS = ("mean", "std", "min", "max")


class ZeroVarianceWarning(UserWarning):
    """Some outputs never vary in the norm file; they are kept and R2 is NaN for them."""


# --------------------------------------------------------------------------- computing
def compute_norm(path: str | os.PathLike, *, block: int = 65536) -> xr.Dataset:
    """Normalisation statistics of a CBRAIN file, computed block-wise.

    Parameters
    ----------
    path : path-like
        CBRAIN-layout file (normally the training split).
    block : int
        Rows per block read.

    Returns
    -------
    xr.Dataset
        ``mean std min max (var_names)`` over every column of the file and
        ``std_by_var (var_names_single)`` (population standard deviation of
        each variable pooled over levels and samples), float64, accumulated in
        float64 with Chan's parallel update (no cancellation).

    Raises
    ------
    DataError
        Non-finite values (naming variable and level) or an empty file.
    """
    names = read_var_names(path)
    catalogue = file_catalogue(path)
    n_cols = names.size
    count = 0
    mean = np.zeros(n_cols)
    m2 = np.zeros(n_cols)
    vmin = np.full(n_cols, np.inf)
    vmax = np.full(n_cols, -np.inf)
    for r0, rows in iter_rows(path, block=block):
        if not np.isfinite(rows).all():
            counts = (~np.isfinite(rows)).sum(axis=0)
            raise nonfinite_error(path, (names, column_labels(names, catalogue)), counts,
                                   first_row=r0 + int(np.argmax(~np.isfinite(rows).all(1))))
        if rows.shape[0] == 0:
            continue
        x = rows.astype(np.float64)
        n_b = x.shape[0]
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta**2 * (count * n_b / total)
        count = total
        vmin = np.minimum(vmin, x.min(axis=0))
        vmax = np.maximum(vmax, x.max(axis=0))
    if count == 0:
        raise DataError("no samples to compute normalisation statistics from", path=path)
    return norm_from_moments(names, catalogue, count, mean, m2, vmin, vmax, source=str(path))


def norm_from_moments(names: np.ndarray, catalogue: Catalogue, count: int, mean: np.ndarray,
                      m2: np.ndarray, vmin: np.ndarray, vmax: np.ndarray, *,
                      source: str) -> xr.Dataset:
    """The norm dataset of :func:`compute_norm` from per-column moments.

    For statistics accumulated elsewhere in one streaming pass (the ClimSim
    converter merges per-chunk moments with Chan's update).

    Parameters
    ----------
    names : np.ndarray
        Variable name of every column (``var_names``).
    catalogue : Catalogue
        The catalogue recorded in the result.
    count : int
        Samples.
    mean, m2, vmin, vmax : np.ndarray
        float64 ``[n_columns]``: mean, sum of squared deviations from it, minimum, maximum.
    source : str
        Where the samples came from (attribute ``source``).
    """
    names = np.asarray(names, dtype=object)
    std = np.sqrt(m2 / count)

    singles = list(dict.fromkeys(names.tolist()))
    std_by_var = np.empty(len(singles))
    for i, name in enumerate(singles):
        sel = names == name
        k = int(sel.sum())
        pooled_mean = mean[sel].mean()
        pooled_m2 = m2[sel].sum() + count * ((mean[sel] - pooled_mean) ** 2).sum()
        std_by_var[i] = np.sqrt(pooled_m2 / (count * k))

    names_str = names.astype(str)
    ds = xr.Dataset(
        {
            "mean": ("var_names", mean, {"long_name": "mean over samples", "units": "varies"}),
            "std": ("var_names", std,
                    {"long_name": "standard deviation over samples (ddof=0)", "units": "varies"}),
            "min": ("var_names", vmin, {"long_name": "minimum over samples", "units": "varies"}),
            "max": ("var_names", vmax, {"long_name": "maximum over samples", "units": "varies"}),
            "std_by_var": ("var_names_single", std_by_var,
                           {"long_name": "standard deviation pooled over levels and samples",
                            "units": "varies"}),
        },
        coords={"var_names": ("var_names", names_str), "var_names_single":
                ("var_names_single", np.array(singles, dtype=str))},
        attrs={"title": "normalisation statistics (CBRAIN layout)", "source": source,
               "n_samples": int(count),
               "units_by_variable": "; ".join(f"{n}: {catalogue.by_name[n].units}"
                                              for n in singles if n in catalogue.by_name),
               **catalogue.attrs()},
    )
    return ds


def write_norm(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a norm dataset atomically (``var_names`` as strings, as the reference)."""
    ds = ds.copy()
    for coord in ("var_names", "var_names_single"):
        ds = ds.assign_coords({coord: ds[coord].values.astype(str).astype(object)})
    return write_netcdf(ds, path, engine="netcdf4")


def read_norm(path: str | os.PathLike) -> xr.Dataset:
    """Read and validate the structure of a norm file (loaded: it is small).

    Raises
    ------
    DataError
        Not netCDF, or lacks ``mean std min max (var_names)`` or
        ``std_by_var (var_names_single)``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("norm file not found", path=path)
    try:
        with xr.open_dataset(path, engine="netcdf4", decode_times=False) as ds:
            ds = ds.load()
    except Exception as err:  # noqa: BLE001 - report, never a library traceback
        raise DataError(f"not a readable netCDF norm file ({err})", path=path) from None
    ds.attrs.setdefault("path", str(path))
    return ds


# --------------------------------------------------------------------------- applying
def _names_of(ds: xr.Dataset, coord: str, source) -> np.ndarray:
    if coord not in ds.variables:
        raise DataError(f"norm file lacks the coordinate {coord!r} (expected mean std min max "
                        "over var_names and std_by_var over var_names_single)", path=source)
    return decode_names(ds[coord].values).astype(str)


class Normalization:
    """Reference normalisation of a catalogue's inputs and outputs (SPCAM: 94 and 65).

    Build with :meth:`from_file`, :meth:`from_dataset` or :meth:`from_any`.

    Attributes
    ----------
    input_mean, input_scale : np.ndarray
        float64 ``[n_inputs]``: ``x_norm = (x - input_mean) / input_scale``.
    output_scale : np.ndarray
        float64 ``[n_outputs]``: ``y_norm = y * output_scale``.
    zero_variance_outputs : np.ndarray
        bool ``[n_outputs]``: outputs with ``std == 0`` or ``max == min`` in the norm file.
    source : str
        Where the statistics came from (file path or ``"<dataset>"``).
    catalogue : Catalogue
        The inputs and outputs normalised (default SPCAM).
    """

    def __init__(self, input_mean: np.ndarray, input_scale: np.ndarray,
                 output_scale: np.ndarray, zero_variance_outputs: np.ndarray,
                 source: str = "<arrays>", catalogue: Catalogue = SPCAM) -> None:
        self.input_mean = np.asarray(input_mean, dtype=np.float64)
        self.input_scale = np.asarray(input_scale, dtype=np.float64)
        self.output_scale = np.asarray(output_scale, dtype=np.float64)
        self.zero_variance_outputs = np.asarray(zero_variance_outputs, dtype=bool)
        self.source = source
        self.catalogue = catalogue
        n_in, n_out = catalogue.n_inputs, catalogue.n_outputs
        if self.input_mean.shape != (n_in,) or self.input_scale.shape != (n_in,):
            raise ValueError(f"input_mean and input_scale must have {n_in} entries")
        if self.output_scale.shape != (n_out,) or self.zero_variance_outputs.shape != (n_out,):
            raise ValueError(f"output_scale and zero_variance_outputs must have {n_out} entries")
        self._in_mean32 = self.input_mean.astype(np.float32)
        self._in_inv32 = (1.0 / self.input_scale).astype(np.float32)

    def __repr__(self) -> str:
        return (f"Normalization(source={self.source!r}, "
                f"zero_variance_outputs={int(self.zero_variance_outputs.sum())})")

    # -- construction --------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike, *, warn: bool = True) -> Normalization:
        """Read a norm file (ours or the reference's ``*_norm.nc``)."""
        return cls.from_dataset(read_norm(path), source=str(path), warn=warn)

    @classmethod
    def from_any(cls, norm, *, warn: bool = True) -> Normalization:
        """A :class:`Normalization` from itself, a norm dataset or a path."""
        if isinstance(norm, Normalization):
            return norm
        if isinstance(norm, xr.Dataset):
            return cls.from_dataset(norm, warn=warn)
        return cls.from_file(norm, warn=warn)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, *, source: str | None = None,
                     warn: bool = True) -> Normalization:
        """Build from a norm dataset (``mean std min max``, ``std_by_var``).

        Raises
        ------
        DataError
            A statistic is missing, a catalogue variable is missing or has the
            wrong number of levels, or a needed statistic is not finite; the
            message names the norm file and the variable.
        """
        source = source or ds.attrs.get("path") or "<dataset>"
        catalogue = file_catalogue({**ds.attrs, "path": source})
        names = _names_of(ds, "var_names", source)
        singles = _names_of(ds, "var_names_single", source)
        for stat in _STATS:
            if stat not in ds.data_vars or ds[stat].shape != names.shape:
                raise DataError(f"norm file lacks {stat!r} over var_names", path=source)
        if "std_by_var" not in ds.data_vars or ds["std_by_var"].shape != singles.shape:
            raise DataError("norm file lacks 'std_by_var' over var_names_single", path=source)
        stats = {s: np.asarray(ds[s].values, dtype=np.float64) for s in _STATS}
        std_by_var = np.asarray(ds["std_by_var"].values, dtype=np.float64)

        def columns(name: str) -> np.ndarray:
            idx = np.flatnonzero(names == name)
            expected = catalogue.by_name[name].n_levels
            if idx.size == 0:
                raise DataError(f"missing from the norm file's var_names (expected {expected} "
                                f"entries){case_hint(name, set(names.tolist()))}",
                                path=source, variable=name)
            if idx.size != expected:
                raise DataError(f"has {idx.size} entries in the norm file's var_names, "
                                f"expected {expected}", path=source, variable=name)
            return idx

        mean, scale = [], []
        for name in catalogue.inputs:
            idx = columns(name)
            single = np.flatnonzero(singles == name)
            if single.size != 1:
                raise DataError("missing from the norm file's var_names_single (std_by_var)"
                                f"{case_hint(name, set(singles.tolist()))}",
                                path=source, variable=name)
            rng = stats["max"][idx] - stats["min"][idx]
            s = np.maximum(rng, std_by_var[single[0]])
            m = stats["mean"][idx]
            if not (np.isfinite(m).all() and np.isfinite(s).all()):
                raise DataError("non-finite mean/min/max/std_by_var in the norm file",
                                path=source, variable=name)
            mean.append(m)
            scale.append(np.where(s > 0, s, 1.0))
        out_scale, zero = [], []
        for name in catalogue.outputs:
            idx = columns(name)
            out_scale.append(np.full(idx.size, catalogue.output_scale[name]))
            std, lo, hi = stats["std"][idx], stats["min"][idx], stats["max"][idx]
            zero.append((std == 0) | (hi == lo))
        norm = cls(np.concatenate(mean), np.concatenate(scale), np.concatenate(out_scale),
                   np.concatenate(zero), source=str(source), catalogue=catalogue)
        if warn and norm.zero_variance_outputs.any():
            warnings.warn(
                f"{source}: zero-variance outputs {', '.join(norm.zero_variance_labels())} "
                "(std == 0 or max == min); kept with normalised value 0, R2 is NaN for them",
                ZeroVarianceWarning, stacklevel=3)
        return norm

    # -- labels --------------------------------------------------------------
    def zero_variance_labels(self) -> list[str]:
        """Feature labels of the zero-variance outputs."""
        return [lab for lab, z in zip(self.output_labels(), self.zero_variance_outputs,
                                      strict=True) if z]

    def input_labels(self) -> list[str]:
        """The input labels, in the order of ``input_mean``."""
        return self.catalogue.input_labels()

    def output_labels(self) -> list[str]:
        """The output labels, in the order of ``output_scale``."""
        return self.catalogue.output_labels()

    # -- transforms ----------------------------------------------------------
    @staticmethod
    def _dtype(x: np.ndarray, dtype) -> np.dtype:
        if dtype is not None:
            return np.dtype(dtype)
        return x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)

    def normalize_inputs(self, x: np.ndarray, *, dtype=None,
                         out: np.ndarray | None = None) -> np.ndarray:
        """``(x - mean) / scale`` for physical inputs ``[..., n_inputs]``.

        float32 input is computed in float32 (as the data are stored), anything
        else in float64; ``dtype`` forces the result type. ``out`` (float32 or
        float64, right shape) receives the result without temporaries.
        """
        x = np.asarray(x)
        if out is not None:
            if out.dtype == np.float32:
                np.subtract(x, self._in_mean32, out=out, casting="same_kind")
                np.multiply(out, self._in_inv32, out=out)
            else:
                np.subtract(x, self.input_mean, out=out)
                np.divide(out, self.input_scale, out=out)
            return out
        dt = self._dtype(x, dtype)
        if dt == np.float32:
            return (x.astype(np.float32, copy=False) - self._in_mean32) * self._in_inv32
        return ((x.astype(np.float64, copy=False) - self.input_mean)
                / self.input_scale).astype(dt, copy=False)

    def denormalize_inputs(self, x: np.ndarray, *, dtype=None) -> np.ndarray:
        """Physical inputs from normalised ``[..., n_inputs]`` (inverse of normalize_inputs)."""
        x = np.asarray(x)
        out = self._dtype(x, dtype)
        return (x.astype(np.float64) * self.input_scale + self.input_mean).astype(out, copy=False)

    def normalize_outputs(self, y: np.ndarray, *, dtype=None,
                          out: np.ndarray | None = None) -> np.ndarray:
        """Physical outputs ``[..., n_outputs]`` to energy-like units (times ``output_scale``)."""
        y = np.asarray(y)
        if out is not None:
            np.multiply(y, self.output_scale.astype(out.dtype), out=out, casting="same_kind")
            return out
        dt = self._dtype(y, dtype)
        return (y * self.output_scale.astype(dt)).astype(dt, copy=False)

    def denormalize_outputs(self, y: np.ndarray, *, dtype=None) -> np.ndarray:
        """Physical outputs from normalised ``[..., n_outputs]`` (divide by ``output_scale``)."""
        y = np.asarray(y)
        out = self._dtype(y, dtype)
        return (y.astype(np.float64) / self.output_scale).astype(out, copy=False)

    def to_dataset(self) -> xr.Dataset:
        """The arrays as a labelled dataset (for reports and the book)."""
        return xr.Dataset(
            {
                "input_mean": ("input", self.input_mean, {"long_name": "input mean",
                                                           "units": "physical"}),
                "input_scale": ("input", self.input_scale,
                                {"long_name": "max(max - min, std_by_var)", "units": "physical"}),
                "output_scale": ("output", self.output_scale,
                                 {"long_name": "output factor to energy units", "units": "1"}),
                "zero_variance": ("output", self.zero_variance_outputs,
                                  {"long_name": "std == 0 or max == min", "units": "1"}),
            },
            coords={"input": self.input_labels(), "output": self.output_labels()},
            attrs={"source": self.source, **self.catalogue.attrs()},
        )


"""Normalised training data from CBRAIN files, and the synthetic data set on disk.

:func:`load_split` reads one split into memory as normalised ``(x[n, n_inputs],
y[n, n_outputs])`` arrays, block by block, so peak memory stays close to the size of
the result; :func:`iter_batches` streams batches for data larger than memory.
:func:`write_synthetic_dataset` writes the synthetic aquaplanet
(:mod:`pcm.data.synthetic`) as the seven files of a run's ``data/`` folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.data import synthetic
from pcm.data.cbrain import (
    column_index,
    column_labels,
    file_catalogue,
    header,
    iter_rows,
    nonfinite_error,
    open_nc,
    validate_names,
)
from pcm.data.cbrain_write import write_cbrain
from pcm.data.normalization import Normalization, compute_norm, write_norm
from pcm.data.splits import split_steps
from pcm.errors import DataError, ParameterError
from pcm.io import write_netcdf

__all__ = [
    "load_split",
    "iter_batches",
    "write_synthetic_dataset",
]

#: Seed offsets of the +4K and -4K runs (a different but deterministic seed).
_SEED_OFFSET = {"plus4K": 104_729, "minus4K": 224_737}

_BLOCK = 65536


def _columns(path, norm) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """Input+output columns, their decoded names and labels, and the sample count.

    The file's catalogue (:func:`pcm.data.cbrain.file_catalogue`) must be the
    norm's: a ClimSim file never meets SPCAM statistics.
    """
    with open_nc(path) as nc:
        names, n_samples = header(nc, path)
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    catalogue = file_catalogue({**attrs, "path": str(path)})
    if catalogue != norm.catalogue:
        raise DataError(f"holds {catalogue.name} data ({catalogue.n_inputs} inputs) but the "
                        f"norm file {norm.source} is for {norm.catalogue.name} "
                        f"({norm.catalogue.n_inputs} inputs)", path=path)
    validate_names(names, catalogue.all_variables, path, catalogue)
    cols = np.concatenate([column_index(names, catalogue.inputs, catalogue),
                           column_index(names, catalogue.outputs, catalogue)])
    labels = column_labels(names, catalogue)
    return cols, names[cols], [labels[c] for c in cols], n_samples


def _selection(n_samples: int, max_samples: int | None, subset: str) -> tuple[int, int]:
    """(stop, step) of the rows to read."""
    if subset not in ("head", "strided"):
        raise ParameterError("subset", f"must be 'head' or 'strided', got {subset!r}")
    if max_samples is None or max_samples >= n_samples:
        return n_samples, 1
    if max_samples < 1:
        raise ParameterError("max_samples", f"must be >= 1, got {max_samples}")
    if subset == "head":
        return max_samples, 1
    step = n_samples // max_samples
    return step * max_samples, step


def _check_finite(rows: np.ndarray, first_row: int, path, names, labels) -> None:
    finite = np.isfinite(rows)
    if finite.all():
        return
    bad_row = int(np.argmax(~finite.all(axis=1)))
    raise nonfinite_error(path, (names, labels), (~finite).sum(axis=0),
                           first_row=first_row + bad_row)


def load_split(
    path: str | os.PathLike,
    norm: Normalization | xr.Dataset | str | os.PathLike,
    *,
    max_samples: int | None = None,
    subset: str = "head",
    dtype: str = "float32",
    block: int = _BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """Read one split as normalised network inputs and outputs.

    Parameters
    ----------
    path : path-like
        CBRAIN-layout file (any column order, extra variables ignored).
    norm : Normalization, xr.Dataset or path-like
        Normalisation statistics (a norm file is read with
        :meth:`Normalization.from_file`).
    max_samples : int, optional
        Read at most this many samples. Which ones depends on ``subset``.
    subset : {"head", "strided"}
        ``"head"`` (default) takes the first ``max_samples`` samples: cheapest,
        and representative for shuffled files; for unshuffled files it means
        the first time steps. ``"strided"`` takes every ``n // max_samples``-th
        sample, spreading the subset evenly over time and space (reads more of
        the file).
    dtype : str
        dtype of the returned arrays (``"float32"`` or ``"float64"``).
    block : int
        Rows read per block; peak memory is the result plus about one block.

    Returns
    -------
    x : np.ndarray
        ``[n, n_inputs]`` normalised inputs, ``(x - mean) / max(max - min, std_by_var)``
        (SPCAM: 94).
    y : np.ndarray
        ``[n, n_outputs]`` outputs in energy units (times the catalogue's
        ``output_scale``; SPCAM: 65).

    Raises
    ------
    DataError
        File unreadable, a variable missing or with the wrong number of levels,
        non-finite values (naming file, variable, level label and sample), or
        file and norm of different catalogues.
    """
    normalization = Normalization.from_any(norm)
    cols, names, labels, n_samples = _columns(path, normalization)
    n_in = normalization.catalogue.n_inputs
    stop, step = _selection(n_samples, max_samples, subset)
    n = len(range(0, stop, step))
    x = np.empty((n, n_in), dtype=dtype)
    y = np.empty((n, normalization.catalogue.n_outputs), dtype=dtype)
    for r0, rows in iter_rows(path, cols, stop=stop, step=step, block=block):
        _check_finite(rows, r0 * step, path, names, labels)
        r1 = r0 + rows.shape[0]
        normalization.normalize_inputs(rows[:, :n_in], out=x[r0:r1])
        normalization.normalize_outputs(rows[:, n_in:], out=y[r0:r1])
    return x, y


def iter_batches(
    path: str | os.PathLike,
    norm: Normalization | xr.Dataset | str | os.PathLike,
    batch_size: int = 1024,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    dtype: str = "float32",
    block: int = _BLOCK,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream normalised ``(x[b, n_in], y[b, n_out])`` batches from a CBRAIN file.

    For data larger than memory. Reads ``block`` rows at a time; with
    ``shuffle`` the samples are permuted within each block and batches are
    formed across the block (blocks are visited in file order, so shuffled
    files are best for training).

    Parameters
    ----------
    path, norm, dtype, block
        As for :func:`load_split`.
    batch_size : int
        Samples per batch.
    shuffle : bool
        Permute samples within each block (deterministic given ``seed``).
    seed : int
        Seed of the permutation.
    drop_remainder : bool
        Drop the last, smaller batch.

    Yields
    ------
    (np.ndarray, np.ndarray)
        Normalised inputs and outputs of one batch.
    """
    if batch_size < 1:
        raise ParameterError("batch_size", f"must be >= 1, got {batch_size}")
    normalization = Normalization.from_any(norm)
    cols, names, labels, _ = _columns(path, normalization)
    n_in = normalization.catalogue.n_inputs
    rng = np.random.default_rng(seed)
    block = max(batch_size, block - block % batch_size)
    carry_x = carry_y = None
    for r0, rows in iter_rows(path, cols, block=block):
        _check_finite(rows, r0, path, names, labels)
        if shuffle:
            rows = rows[rng.permutation(rows.shape[0])]
        bx = normalization.normalize_inputs(rows[:, :n_in], dtype=dtype)
        by = normalization.normalize_outputs(rows[:, n_in:], dtype=dtype)
        if carry_x is not None:
            bx, by = np.concatenate([carry_x, bx]), np.concatenate([carry_y, by])
            carry_x = carry_y = None
        full = bx.shape[0] - bx.shape[0] % batch_size
        for b0 in range(0, full, batch_size):
            yield bx[b0:b0 + batch_size], by[b0:b0 + batch_size]
        if full < bx.shape[0]:
            carry_x, carry_y = bx[full:], by[full:]
    if carry_x is not None and not drop_remainder:
        yield carry_x, carry_y


# --------------------------------------------------------------------------- synthetic
def write_synthetic_dataset(
    out_dir: str | os.PathLike,
    *,
    steps: int = 96,
    seed: int = 0,
    n_lat: int | None = None,
    n_lon: int | None = None,
    world: int = 0,
) -> dict[str, Path]:
    """Write the synthetic aquaplanet (or a randomised world) as CBRAIN files.

    One continuous simulation of ``steps`` half-hourly steps is cut into
    consecutive blocks: train (70 %), valid (15 %), test (15 %), each at least
    one step. ``plus4K`` and ``minus4K`` are separate runs as long as the test
    period with the sea-surface temperature shifted by +4 K and -4 K and
    different, deterministic seeds. ``norm.nc`` holds statistics of the
    training split, ``drivers.nc`` the true physical drivers and their strength
    (:func:`pcm.data.synthetic.driver_strength`). Same arguments
    give identical files' contents.

    Parameters
    ----------
    out_dir : path-like
        Directory to write into (created).
    steps : int
        Time steps of the control simulation (train + valid + test), >= 3.
    seed : int
        Random seed.
    n_lat, n_lon : int, optional
        Grid subset (default: full T42, 64 x 128).
    world : int
        0: the aquaplanet; 1-199: a physics drawn from this world seed
        (:mod:`pcm.data.synthetic.worlds`; 1-99 development, 100-199 held-out).

    Returns
    -------
    dict
        ``train valid test plus4K minus4K norm drivers`` -> path.
    """
    for key, value in (("lat", n_lat), ("lon", n_lon)):
        limit = 64 if key == "lat" else 128
        if value is not None and not 1 <= value <= limit:
            raise ParameterError(key, f"must be between 1 and {limit}, got {value}")
    blocks = split_steps(int(steps))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    control = synthetic.generate(int(steps), seed=seed, n_lat=n_lat, n_lon=n_lon, world=world)
    for name, sel in blocks.items():
        paths[name] = write_cbrain(control.isel(time=sel), out / f"{name}.nc")
    n_test = blocks["test"].stop - blocks["test"].start
    del control
    for name, shift in (("plus4K", 4.0), ("minus4K", -4.0)):
        fields = synthetic.generate(n_test, seed=seed + _SEED_OFFSET[name], n_lat=n_lat,
                                    n_lon=n_lon, sst_shift=shift, world=world)
        paths[name] = write_cbrain(fields, out / f"{name}.nc")
        del fields
    paths["norm"] = write_norm(compute_norm(paths["train"]), out / "norm.nc")
    drivers = synthetic.true_drivers(world)
    drivers_ds = drivers.rename("drivers").to_dataset()
    drivers_ds["drivers"].attrs.setdefault("long_name", "true physical drivers of each output")
    drivers_ds["drivers"].attrs.setdefault("units", "1")
    # a fixed small sample (16 x 32 columns, 24 steps) of the control climate
    drivers_ds["driver_strength"] = synthetic.driver_strength(seed=seed, world=world)
    paths["drivers"] = write_netcdf(drivers_ds, out / "drivers.nc")
    return paths

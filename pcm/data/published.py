"""The paper's own masks: what PCMasking learned on real SPCAM, as published.

Kühbacher et al. (2024) published, in the repository of their reference
implementation (EyringMLClimateGroup/kuehbacher24ICMLA_PCMasking, MIT licence,
notice in ``pcm/data/published/LICENSE``), the 65 masking vectors of their
pre-masking networks trained on the real SPCAM aquaplanet and, through the
names of the published model folders, the threshold selected for every
output. The SPCAM data are not public; these artefacts are. They are packaged
as one netCDF file, ``pcm/data/published/pcmasking_spcam.nc``, built from the
reference files by :func:`build_published_masks` and read by
:func:`published_masks`.

The mask of an output keeps the inputs whose masking-vector entry lies
strictly above the output's threshold (``mask = masking_vector > threshold``,
the method's rule); on these files it reproduces the published number of
inputs of every output (2,961 inputs in all, 45.6 per output; the moistening
PHQ at the 11 levels from 3.64 to 142.99 hPa keeps none).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.errors import DataError
from pcm.io import write_netcdf
from pcm.variables import input_labels, output_labels

__all__ = [
    "PUBLISHED_FILE",
    "SOURCE",
    "read_masking_vector_files",
    "build_published_masks",
    "published_masks",
    "inputs_kept",
]

#: The packaged file (built by :func:`build_published_masks`).
PUBLISHED_FILE = Path(__file__).with_name("published") / "pcmasking_spcam.nc"

#: Where the artefacts come from.
SOURCE = ("EyringMLClimateGroup/kuehbacher24ICMLA_PCMasking (MIT licence): masking vectors of "
          "the pre-masking networks trained on the real SPCAM aquaplanet, thresholds of the "
          "published masking networks (lowest last-epoch training loss)")

_VECTOR_FILE = re.compile(r"^masking_vector_(.+)\.npy$")


def read_masking_vector_files(directory: str | os.PathLike) -> xr.DataArray:
    """Read the reference implementation's ``masking_vector_<label>.npy`` files.

    Parameters
    ----------
    directory : path-like
        Folder holding one file per SPCAM output (``masking_vector_tphystnd-691.39.npy``,
        ``masking_vector_prect.npy``, ...), each an array of 94 values in the
        order of :func:`pcm.variables.input_labels`.

    Returns
    -------
    xarray.DataArray
        ``masking_vector(output, input)`` in the dtype of the files (float32
        for the published ones), outputs in :func:`pcm.variables.output_labels`
        order.

    Raises
    ------
    DataError
        If the folder is missing, an output has no file (all are named), or a
        file does not hold 94 finite values.
    """
    outputs, inputs = output_labels(), input_labels()
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("not a directory of masking_vector_<label>.npy files", path=directory)
    found = {}
    for path in directory.iterdir():
        match = _VECTOR_FILE.match(path.name)
        if match:
            found[match.group(1).lower()] = path
    missing = [label for label in outputs if label not in found]
    if missing:
        raise DataError(f"no masking_vector_<label>.npy for {len(missing)} outputs: "
                        f"{', '.join(missing)}", path=directory)
    rows = []
    for label in outputs:
        try:
            vec = np.load(found[label], allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read as a numpy array: {err}", path=found[label]) from None
        vec = np.asarray(vec).reshape(-1)
        if vec.shape != (len(inputs),) or vec.dtype.kind != "f" or not np.all(np.isfinite(vec)):
            raise DataError(f"expected {len(inputs)} finite floats (one per input), got shape "
                            f"{vec.shape} dtype {vec.dtype}", path=found[label], variable=label)
        rows.append(vec)
    return xr.DataArray(
        np.stack(rows), dims=("output", "input"),
        coords={"output": np.array(outputs), "input": np.array(inputs)},
        name="masking_vector",
        attrs={"long_name": "masking vector: L2 norm of each input's row of the "
                            "pre-masking input kernel",
               "units": "1", "source": f"reference files in {directory}"})


def _read_thresholds(path: Path, outputs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read as JSON: {err}", path=path) from None
    missing = [label for label in outputs if label not in table]
    if missing:
        raise DataError(f"no entry for {len(missing)} outputs: {', '.join(missing)}", path=path)
    try:
        threshold = np.array([float(table[o]["threshold"]) for o in outputs])
        n_inputs = np.array([int(table[o]["n_inputs"]) for o in outputs], dtype=np.int32)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"every output needs 'threshold' (number) and 'n_inputs' (integer): "
                        f"{err!r}", path=path) from None
    return threshold, n_inputs


def build_published_masks(src_dir: str | os.PathLike,
                          out: str | os.PathLike = PUBLISHED_FILE) -> Path:
    """Build the packaged netCDF of the published masks from the reference files.

    Parameters
    ----------
    src_dir : path-like
        The folder of published artefacts (``masking_vectors/``,
        ``thresholds.json``), as in ``shared/reference/pcmasking_published``.
    out : path-like
        Destination (default: the packaged :data:`PUBLISHED_FILE`).

    Returns
    -------
    Path
        ``out``, holding ``masking_vector(output, input)`` (float32, as
        published), ``threshold(output)`` and ``n_inputs_published(output)``.

    Raises
    ------
    DataError
        A file is missing or malformed, or the masks ``masking_vector >
        threshold`` do not reproduce the published ``n_inputs`` of an output.
    """
    src_dir = Path(src_dir)
    vectors = read_masking_vector_files(src_dir / "masking_vectors")
    outputs = [str(o) for o in vectors["output"].values]
    threshold, n_inputs = _read_thresholds(src_dir / "thresholds.json", outputs)
    kept = (vectors.values.astype(np.float64) > threshold[:, None]).sum(axis=1)
    wrong = [f"{o} ({k} != {n})" for o, k, n in zip(outputs, kept, n_inputs, strict=True)
             if k != n]
    if wrong:
        raise DataError(f"masking_vector > threshold does not reproduce the published n_inputs "
                        f"of {', '.join(wrong)}", path=src_dir / "thresholds.json")
    ds = xr.Dataset(
        {"masking_vector": vectors.drop_attrs().assign_attrs(
             long_name="masking vector of the published pre-masking network: L2 norm of each "
                       "input's row of its input kernel", units="1"),
         "threshold": ("output", threshold,
                       {"long_name": "threshold selected for the published masking network",
                        "units": "1"}),
         "n_inputs_published": ("output", n_inputs,
                                {"long_name": "inputs kept by the published mask "
                                              "(num_inputs_per_var_train)", "units": "1"})},
        coords={"output": vectors["output"].values, "input": vectors["input"].values},
        attrs={"title": "PCMasking masks learned on real SPCAM (Kuehbacher et al. 2024)",
               "source": SOURCE, "license": "MIT (see LICENSE beside this file)",
               "rule": "mask = masking_vector > threshold"})
    ds["output"].attrs["long_name"] = "output feature label"
    ds["input"].attrs["long_name"] = "input feature label"
    return write_netcdf(ds, out)


def published_masks(path: str | os.PathLike = PUBLISHED_FILE) -> xr.Dataset:
    """The paper's masks on real SPCAM: masking vectors, thresholds and masks.

    Parameters
    ----------
    path : path-like
        The netCDF file (default: the packaged one).

    Returns
    -------
    xarray.Dataset
        ``masking_vector(output, input)``, ``threshold(output)``,
        ``mask(output, input)`` (bool, ``masking_vector > threshold``) and
        ``n_inputs_published(output)``, with the feature labels of
        :mod:`pcm.variables` as coordinates and CF ``units``/``long_name``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("the packaged published masks are missing (reinstall pcm)", path=path)
    with xr.open_dataset(path) as raw:
        ds = raw.load()
    for name in ("masking_vector", "threshold", "n_inputs_published"):
        if name not in ds:
            raise DataError("expected the published masks file", path=path, variable=name)
    mask = ds["masking_vector"].astype(np.float64) > ds["threshold"]
    ds["mask"] = mask.assign_attrs(long_name="input is kept (True) or masked out (False) for "
                                             "the output", units="1")
    return ds


def inputs_kept(masks: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """Number of inputs each output's mask keeps, ``n_inputs(output)``."""
    mask = masks["mask"] if isinstance(masks, xr.Dataset) else masks
    return mask.sum("input").astype(np.int64).rename("n_inputs").assign_attrs(
        long_name="inputs kept by the mask", units="1")

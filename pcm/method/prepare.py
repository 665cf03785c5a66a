"""Step 1 of the method: the data of a run (synthetic aquaplanet or the user's files).

Writes the synthetic aquaplanet into ``RUN/data`` or validates the user's
CBRAIN-layout files where they are, and records either in ``RUN/data/manifest.json``.
"""

from __future__ import annotations

from pathlib import Path

from pcm.data.cbrain import file_catalogue
from pcm.data.checks import check_file
from pcm.data.datasets import write_synthetic_dataset
from pcm.errors import ParameterError
from pcm.params.config import DataConfig
from pcm.run.rundir import RunDir

__all__ = ["prepare_data"]


def prepare_data(run: RunDir, config: DataConfig) -> dict[str, Path | None]:
    """Write the synthetic data, or validate the user's files, and write the manifest.

    Parameters
    ----------
    run : RunDir
        The run directory.
    config : DataConfig
        ``data_source`` "synthetic": generate the aquaplanet (``seed``,
        ``data_steps``, ``data_n_lat``, ``data_n_lon``, ``data_world``; see
        :func:`pcm.data.datasets.write_synthetic_dataset`); "spcam": use the files
        ``data_train data_valid data_test data_norm`` (+ optional ``data_plus4K
        data_minus4K``); "climsim": the files of ``data_dir`` written by ``pcm data
        climsim`` (the catalogue they record sizes the whole run).

    Returns
    -------
    dict
        Split name -> path (or None), as recorded in the manifest.

    Raises
    ------
    DataError
        A user file is missing or malformed (names file and variable).
    """
    source = config.data_source
    if source == "synthetic":
        files = write_synthetic_dataset(run.data_dir, steps=config.data_steps, seed=config.seed,
                                        n_lat=config.data_n_lat, n_lon=config.data_n_lon,
                                        world=config.data_world)
        files = {k: Path(v) for k, v in files.items()}
    elif source in ("spcam", "climsim"):
        files = {k: (None if v is None else Path(v)) for k, v in config.paths.items()}
        for key in ("train", "valid", "test", "norm"):
            if files.get(key) is None:
                raise ParameterError("data.dir" if source == "climsim" else f"data.{key}",
                                     f"required when data.source is {source}")
        for key, path in files.items():
            if path is not None and key != "norm":
                check_file(path, norm=files["norm"])
    else:
        raise ParameterError("data.source", f"must be synthetic, spcam or climsim, got "
                             f"{source!r}")
    run.write_manifest(files, source=source, catalogue=file_catalogue(files["train"]).name)
    return files

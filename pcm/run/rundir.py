"""Where the artefacts of one pipeline run live, and the one place that reads them.

A run directory is the only channel between the six notebooks: each step
reads the previous steps' artefacts from it and writes its own (the layout and
every artefact's variables are listed in ``docs/architecture.md``)::

    RUN/
      data/manifest.json     which files hold train/valid/test/... (+ norm, drivers)
      data/*.nc              synthetic data (user SPCAM files stay where they are)
      models/<kind>.keras    stacked networks (premask, unconstrained, pcmasking, ...)
      checkpoints/<phase>/   per-epoch training checkpoints (resume)
      masking_vectors.nc  thresholds.nc  masks.nc  r2.nc  shap.nc  drivers.nc
      summary.json
      pipeline_state.json    what ``pcm run`` ran: parameters, input fingerprints, status
      .pcm-run.lock  .pcm-run.pid   held by the ``pcm run`` using the directory
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr
from filelock import FileLock, Timeout

from pcm.data.cbrain import header, open_nc
from pcm.data.datasets import load_split
from pcm.data.normalization import Normalization
from pcm.data.streaming import DiskSplit, choose_in_memory, split_nbytes
from pcm.errors import DataError, ParameterError, PCMError
from pcm.io import file_problem, read_json, write_json
from pcm.nn.saving import load_stacked
from pcm.variables import SPCAM, Catalogue

__all__ = ["RunDir", "DATA_SPLITS", "MODEL_KINDS", "MASK_FILES", "ARTEFACT_CONTENTS",
           "read_mask_file", "read_masking_vectors", "run_lock", "LOCK_FILE", "PID_FILE"]

#: Lock file that keeps a second ``pcm run`` (or ``pcm sweep``) off a run directory, and
#: the file naming the process that holds it.
LOCK_FILE = ".pcm-run.lock"
PID_FILE = ".pcm-run.pid"

#: Data splits a manifest may name; the first three are required.
DATA_SPLITS = ("train", "valid", "test", "plus4K", "minus4K")

#: Model kinds in the order the book shows them. ``paper_rule``: PCMasking with the paper's
#: selection rule beside the run's own (parameter ``paper_rule``).
MODEL_KINDS = ("unconstrained", "causal", "paper_rule", "pcmasking")

#: Mask artefact of each model kind that selects inputs, and the step that writes it.
MASK_FILES = {"causal": ("causal_masks.nc", "the causal phases (discovery and q search)"),
              "paper_rule": ("paper_rule_masks.nc", "the threshold search with paper_rule: true"),
              "pcmasking": ("masks.nc", "the threshold search")}


#: What an artefact must hold (netCDF variables, JSON keys) for a finished step to count as
#: complete when a run resumes; artefacts not listed must open (``pcm.io.file_problem``).
ARTEFACT_CONTENTS: dict[str, tuple[str, ...]] = {
    "data/manifest.json": ("source", "files"),
    "masking_vectors.nc": ("masking_vector",),
    "thresholds.nc": ("loss", "threshold", "chosen_index"),
    "masks.nc": ("mask", "threshold"),
    "paper_rule_thresholds.nc": ("loss", "threshold", "chosen_index"),
    "paper_rule_masks.nc": ("mask", "threshold"),
    "causal_masks.nc": ("mask",),
    "history_causal.nc": ("loss", "val_loss"),
    "r2.nc": ("r2",),
    "shap.nc": ("shap",),
    "summary.json": ("r2", "drivers", "seconds"),
}


def read_mask_file(path: str | os.PathLike, *, missing: str,
                   catalogue: Catalogue = SPCAM) -> xr.DataArray:
    """A validated boolean ``mask(output, input)`` from ``masks.nc`` or ``causal_masks.nc``.

    Parameters
    ----------
    path : path-like
        The netCDF artefact.
    missing : str
        What to tell the user when the file does not exist (which phase writes it).
    catalogue : Catalogue
        The run's catalogue (its labels order the result).

    Returns
    -------
    xarray.DataArray
        Booleans in the catalogue's output and input order.
    """
    outputs, inputs = catalogue.output_labels(), catalogue.input_labels()
    path = Path(path)
    if not path.exists():
        raise DataError(missing, path=path)
    with xr.open_dataset(path) as ds:
        if "mask" not in ds:
            raise DataError("expected variable mask(output, input)", path=path, variable="mask")
        mask = ds["mask"].load().astype(bool)
    try:
        return mask.sel(output=outputs, input=inputs)
    except KeyError as err:
        raise DataError(f"mask lacks labels: {err}", path=path, variable="mask") from None


def read_masking_vectors(path: str | os.PathLike, catalogue: Catalogue = SPCAM) -> xr.DataArray:
    """Read ``masking_vector(output, input)`` from a netCDF file, in the catalogue's order."""
    outputs, inputs = catalogue.output_labels(), catalogue.input_labels()
    path = Path(path)
    if not path.exists():
        raise DataError("no masking vectors: run compute_masking_vectors first", path=path)
    with xr.open_dataset(path) as ds:
        if "masking_vector" not in ds:
            raise DataError("expected variable masking_vector(output, input)", path=path,
                            variable="masking_vector")
        da = ds["masking_vector"].load()
    missing = sorted(set(outputs) - set(da["output"].values.tolist()))
    if missing:
        raise DataError(f"masking vectors missing for outputs {missing}", path=path,
                        variable="masking_vector")
    return da.sel(output=outputs, input=inputs)


class RunDir:
    """Paths of one run directory.

    Parameters
    ----------
    root : path-like
        The run directory (created on demand).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, run: RunDir | str | os.PathLike) -> RunDir:
        """``run`` itself if it is a RunDir, else a RunDir on that path."""
        return run if isinstance(run, RunDir) else cls(run)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __fspath__(self) -> str:
        return str(self.root)

    # -- fixed locations -------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """Folder of the data files and the manifest."""
        return self.root / "data"

    @property
    def manifest_path(self) -> Path:
        """JSON file naming the data files of this run."""
        return self.data_dir / "manifest.json"

    def artefact(self, name: str) -> Path:
        """Path of a top-level artefact (``"masks.nc"``, ``"summary.json"``)."""
        return self.root / name

    def model(self, kind: str) -> Path:
        """Path of a stacked model in native Keras format."""
        return self.root / "models" / f"{kind}.keras"

    def checkpoints(self, phase: str) -> Path:
        """Checkpoint folder of a training phase."""
        return self.root / "checkpoints" / phase

    def record_seconds(self, **seconds: float) -> Path:
        """Merge wall seconds per phase into ``seconds.json`` (other phases are kept).

        Examples
        --------
        >>> run.record_seconds(premask=12.3)  # doctest: +SKIP
        """
        path = self.artefact("seconds.json")
        current = read_json(path) if path.exists() else {}
        current.update({phase: round(float(s), 3) for phase, s in seconds.items()})
        return write_json(current, path)

    def artefact_problem(self, name: str) -> str | None:
        """What is wrong with artefact ``name`` (relative path), or None if it is usable.

        The file is opened and read (netCDF, JSON, Keras archive) and must hold
        the variables or keys of :data:`ARTEFACT_CONTENTS`.
        """
        return file_problem(self.root / name, ARTEFACT_CONTENTS.get(name, ()))

    # -- data manifest ---------------------------------------------------
    def write_manifest(self, files: dict[str, str | os.PathLike | None], *, source: str,
                       catalogue: str | None = None) -> Path:
        """Record which files hold the data of this run.

        Parameters
        ----------
        files : dict
            Keys among :data:`DATA_SPLITS`, ``"norm"`` and ``"drivers"``; values
            are paths (absolute or relative to the run directory) or None.
        source : {"synthetic", "spcam", "climsim"}
            Where the data came from.
        catalogue : str, optional
            Name of the variable catalogue of the data (``spcam``, ``climsim``); it
            sizes the run's networks (:attr:`catalogue`). Default ``spcam`` for
            ``synthetic`` and ``spcam`` data (their layout); required for any other
            source.

        Raises
        ------
        ParameterError
            No catalogue for a source other than ``synthetic`` or ``spcam``.
        """
        if catalogue is None:
            if source not in ("synthetic", "spcam"):
                raise ParameterError("catalogue", f"required for {source} data (which "
                                     f"catalogue sizes the networks?), got none")
            catalogue = SPCAM.name
        entries = {k: (None if v is None else str(Path(v).absolute())) for k, v in files.items()}
        return write_json({"source": source, "catalogue": catalogue, "files": entries},
                          self.manifest_path)

    def manifest(self) -> dict:
        """The manifest written by the data-preparation step."""
        if not self.manifest_path.exists():
            raise DataError("no data manifest: run the data-preparation step first",
                            path=self.manifest_path)
        return read_json(self.manifest_path)

    def data_path(self, name: str) -> Path | None:
        """Path of a data file named in the manifest, or None if absent.

        Parameters
        ----------
        name : str
            One of :data:`DATA_SPLITS`, ``"norm"`` or ``"drivers"``.
        """
        value = self.manifest()["files"].get(name)
        return None if value is None else Path(value)

    @property
    def source(self) -> str:
        """``"synthetic"``, ``"spcam"`` or ``"climsim"``."""
        return self.manifest()["source"]

    @property
    def catalogue(self) -> Catalogue:
        """The variable catalogue of this run's data.

        Named in the manifest (SPCAM when it names none); the levels of other
        catalogues are read from the run's norm file. Sizes everything of the
        run: networks, masks, R², SHAP, figures.
        """
        if self.manifest().get("catalogue", SPCAM.name) == SPCAM.name:
            return SPCAM
        return self.norm().catalogue

    # -- reading artefacts -----------------------------------------------
    def norm(self) -> Normalization:
        """The normalisation of this run's data (``norm`` file of the manifest)."""
        path = self.data_path("norm")
        if path is None:
            raise DataError("the data manifest names no 'norm' file", path=self.manifest_path)
        return Normalization.from_file(path, warn=False)

    def arrays(self, split: str, *, max_samples: int | None = None, dtype: str = "float32",
               warn: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Normalised ``(x, y)`` of one data split (:func:`pcm.data.datasets.load_split`).

        Parameters
        ----------
        split : str
            One of :data:`DATA_SPLITS`.
        max_samples : int, optional
            Read at most this many samples.
        dtype : str
            Array dtype.
        warn : bool
            Warn about zero-variance statistics of the norm file.
        """
        path = self.data_path(split)
        if path is None:
            raise DataError(f"the data manifest names no {split!r} file", path=self.manifest_path)
        norm = self.data_path("norm")
        if norm is None:
            raise DataError("the data manifest names no 'norm' file", path=self.manifest_path)
        return load_split(path, Normalization.from_file(norm, warn=warn),
                          max_samples=max_samples, dtype=dtype)

    def split_path(self, split: str) -> Path:
        """Path of a data split the manifest must name (one error line if it does not)."""
        path = self.data_path(split)
        if path is None:
            raise DataError(f"the data manifest names no {split!r} file", path=self.manifest_path)
        return path

    def split_samples(self, split: str) -> int:
        """Samples of a split, from its header (nothing is read)."""
        path = self.split_path(split)
        with open_nc(path) as nc:
            return header(nc, path)[1]

    def split_data(self, split: str, *, max_samples: int | None = None,
                   dtype: str = "float32", in_memory: str = "auto",
                   memory_budget_mb: float = 8192.0, warn: bool = True
                   ) -> tuple[np.ndarray | DiskSplit, np.ndarray | None]:
        """``(x, y)`` arrays of a split when it fits the memory budget, else ``(DiskSplit, None)``.

        ``in_memory`` and ``memory_budget_mb`` are ``data.in_memory`` and
        ``data.memory_budget_mb`` (:func:`pcm.data.streaming.choose_in_memory`).
        """
        n = self.split_samples(split)
        n = n if max_samples is None else min(n, int(max_samples))
        catalogue = self.catalogue
        nbytes = split_nbytes(n, catalogue.n_inputs + catalogue.n_outputs, dtype)
        if choose_in_memory(in_memory, nbytes, memory_budget_mb):
            return self.arrays(split, max_samples=max_samples, dtype=dtype, warn=warn)
        return DiskSplit(self.split_path(split), self.norm(), max_samples=max_samples,
                         dtype=dtype, budget_mb=memory_budget_mb), None

    def training_data(self, max_samples: int | None, compute_dtype: str, *,
                      in_memory: str = "auto", memory_budget_mb: float = 8192.0) -> tuple:
        """``(x, y, x_valid, y_valid)``: :meth:`training_arrays`, or streamed splits.

        A split larger than the budget (or every split, ``in_memory="false"``) comes as a
        :class:`~pcm.data.streaming.DiskSplit` with ``y`` None, which
        :func:`pcm.nn.trainer.train_stacked` streams.
        """
        dtype = "float64" if compute_dtype == "float64" else "float32"
        x, y = self.split_data("train", max_samples=max_samples, dtype=dtype,
                               in_memory=in_memory, memory_budget_mb=memory_budget_mb)
        xv, yv = self.split_data("valid", max_samples=max_samples, dtype=dtype,
                                 in_memory=in_memory, memory_budget_mb=memory_budget_mb)
        for name, arr in (("train", y), ("valid", yv)):
            if arr is not None:
                self.check_outputs(name, arr)
        return x, y, xv, yv

    def training_arrays(self, max_samples: int | None, compute_dtype: str
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x, y, x_valid, y_valid)`` for training, both capped at ``max_samples``."""
        dtype = "float64" if compute_dtype == "float64" else "float32"
        x, y = self.arrays("train", max_samples=max_samples, dtype=dtype)
        xv, yv = self.arrays("valid", max_samples=max_samples, dtype=dtype)
        self.check_outputs("train", y)
        self.check_outputs("valid", yv)
        return x, y, xv, yv

    def check_outputs(self, split: str, y: np.ndarray) -> None:
        """One error line naming the split's file when ``y`` has not the catalogue's outputs."""
        n_out = self.catalogue.n_outputs
        if y.shape[1] != n_out:
            raise DataError(f"expected {n_out} outputs, got {y.shape[1]}",
                            path=self.data_path(split))

    def load_model(self, kind: str, *, compute_dtype: str | None = None):
        """The stacked model ``models/<kind>.keras`` (safe-mode loading)."""
        return load_stacked(self.model(kind), compute_dtype=compute_dtype)

    def load_models(self, kinds: tuple[str, ...] = MODEL_KINDS) -> dict:
        """The models of this run that exist, in :data:`MODEL_KINDS` order."""
        return {kind: self.load_model(kind) for kind in kinds if self.model(kind).exists()}

    def history(self, phase: str) -> xr.Dataset:
        """The training history ``history_<phase>.nc`` (premask, unconstrained, finetune)."""
        path = self.artefact(f"history_{phase}.nc")
        if not path.exists():
            raise DataError(f"no history of phase {phase!r}: run that phase first", path=path)
        with xr.open_dataset(path) as ds:
            return ds.load()

    def masking_vectors(self) -> xr.DataArray:
        """``masking_vector(output, input)`` from ``masking_vectors.nc``."""
        return read_masking_vectors(self.artefact("masking_vectors.nc"), self.catalogue)

    def mask(self, kind: str = "pcmasking") -> xr.DataArray:
        """Boolean ``mask(output, input)`` of a model kind that selects inputs."""
        if kind not in MASK_FILES:
            raise DataError(f"model kind {kind!r} has no mask; expected one of "
                            f"{', '.join(MASK_FILES)}")
        name, writer = MASK_FILES[kind]
        return read_mask_file(self.artefact(name), missing=f"no masks: run {writer} first",
                              catalogue=self.catalogue)

    def masks(self) -> dict[str, xr.DataArray]:
        """The masks that exist, per model kind (``causal``, ``pcmasking``)."""
        return {kind: self.mask(kind) for kind, (name, _) in MASK_FILES.items()
                if self.artefact(name).exists()}

    def drivers(self) -> xr.DataArray | None:
        """True drivers ``drivers(output, input)`` of a synthetic run, None if unknown."""
        path = self.data_path("drivers")
        if path is None or not Path(path).exists():
            return None
        with xr.open_dataset(path) as ds:
            if "drivers" not in ds:
                raise DataError("no 'drivers' variable", path=path, variable="drivers")
            return ds["drivers"].load().astype(bool)

    def driver_strength(self) -> xr.DataArray | None:
        """``driver_strength(output, input)`` of a synthetic run (share of the output's
        deterministic variance), None if unknown (user data, or data written before it)."""
        path = self.data_path("drivers")
        if path is None or not Path(path).exists():
            return None
        with xr.open_dataset(path) as ds:
            return ds["driver_strength"].load() if "driver_strength" in ds else None


@contextmanager
def run_lock(root: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of a run directory; refuse at once if another process holds it.

    Parameters
    ----------
    root : path-like
        An existing run directory.

    Raises
    ------
    PCMError
        ``another pcm run is using DIR (pid N)``.
    """
    root = Path(root)
    lock = FileLock(root / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            pid = (root / PID_FILE).read_text().strip() or "unknown"
        except OSError:
            pid = "unknown"
        raise PCMError(f"another pcm run is using {root} (pid {pid}); wait for it to finish "
                       "or choose another --out") from None
    try:
        (root / PID_FILE).write_text(f"{os.getpid()}\n")
        yield
    finally:
        (root / PID_FILE).unlink(missing_ok=True)
        lock.release()

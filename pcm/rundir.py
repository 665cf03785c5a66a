"""Where the artefacts of one pipeline run live.

A run directory is the only channel between the six notebooks: each step
reads the previous steps' artefacts from it and writes its own (DESIGN.md,
"Artefacts of a run directory")::

    RUN/
      data/manifest.json     which files hold train/valid/test/... (+ norm, drivers)
      data/*.nc              synthetic data (user SPCAM files stay where they are)
      models/<kind>.keras    stacked networks (premask, unconstrained, pcmasking, ...)
      checkpoints/<phase>/   per-epoch training checkpoints (resume)
      masking_vectors.nc  thresholds.nc  masks.nc  r2.nc  shap.nc  drivers.nc
      summary.json
"""

from __future__ import annotations

import os
from pathlib import Path

from pcm.errors import DataError
from pcm.io import read_json, write_json

__all__ = ["RunDir", "DATA_SPLITS", "MODEL_KINDS"]

#: Data splits a manifest may name; the first three are required.
DATA_SPLITS = ("train", "valid", "test", "plus4K", "minus4K")

#: Model kinds in the order the book shows them.
MODEL_KINDS = ("unconstrained", "causal", "pcmasking")


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

    # -- data manifest ---------------------------------------------------
    def write_manifest(self, files: dict[str, str | os.PathLike | None], *, source: str) -> Path:
        """Record which files hold the data of this run.

        Parameters
        ----------
        files : dict
            Keys among :data:`DATA_SPLITS`, ``"norm"`` and ``"drivers"``; values
            are paths (absolute or relative to the run directory) or None.
        source : {"synthetic", "spcam"}
            Where the data came from.
        """
        entries = {k: (None if v is None else str(Path(v).absolute())) for k, v in files.items()}
        return write_json({"source": source, "files": entries}, self.manifest_path)

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
        """``"synthetic"`` or ``"spcam"``."""
        return self.manifest()["source"]

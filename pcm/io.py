"""Atomic writing of artefacts: a crash never leaves a half-written file.

Every artefact of a run directory is written to a temporary file beside its
destination and renamed into place, so a killed run leaves either the old
complete file or the new complete file, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import xarray as xr

__all__ = ["atomic_path", "write_netcdf", "write_json", "read_json"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        Final destination. Its parent directory is created if needed.

    Yields
    ------
    Path
        Where the caller writes. Removed if the body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write ``ds`` to netCDF atomically and return the path."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, **kwargs)
    return Path(path)


def write_json(obj: Any, path: str | os.PathLike, *, default: Callable | None = None) -> Path:
    """Write ``obj`` as indented JSON atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=default) + "\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())

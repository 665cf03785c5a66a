"""Atomic writing of artefacts: a crash never leaves a half-written file.

Every artefact of a run directory is written to a temporary file beside its
destination and renamed into place, so a killed run leaves either the old
complete file or the new complete file, never a truncated one. The renamed
file gets the permissions the process's umask gives a new file (``0644`` under
the usual ``022``), not the private ``0600`` of a temporary file.

:func:`output_dir` creates the folder a command writes into (``--out``) and
turns the operating system's refusals into one :class:`~pcm.errors.PCMError`
line naming the path and the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import xarray as xr

from pcm.errors import PCMError

__all__ = ["atomic_path", "write_netcdf", "write_json", "read_json", "current_umask",
           "output_dir", "file_problem"]


def current_umask() -> int:
    """The process's file-creation mask (read without changing it where Linux allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def output_dir(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """Create the directory ``path`` (and its parents) for a command to write into.

    Parameters
    ----------
    path : path-like
        The directory; an existing directory is fine.
    option : str
        How the user named it (prefixes the message).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    PCMError
        One line naming the path and the problem: it exists and is not a
        directory, a parent is a file, permission denied, or any other refusal
        of the operating system.
    """
    path = Path(path)
    where = f"{option} {path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PCMError(f"{where}: exists and is not a directory") from None
    except NotADirectoryError:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        what = f"{blocker} is a file, not a directory" if blocker else "a parent is not a folder"
        raise PCMError(f"{where}: cannot create the directory: {what}") from None
    except PermissionError:
        raise PCMError(f"{where}: cannot create the directory: permission denied") from None
    except OSError as err:
        raise PCMError(f"{where}: cannot create the directory: "
                       f"{err.strerror or err.__class__.__name__}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PCMError(f"{where}: the directory is not writable (permission denied)")
    return path


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
        if tmp_path.is_file():  # mkstemp's 0600 -> what the umask gives a new file
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write ``ds`` to netCDF atomically and return the path."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, **kwargs)
    return Path(path)


def write_json(obj: Any, path: str | os.PathLike, *, default: Callable | None = None,
               indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON atomically (indented by ``indent``; None: one line, written
    several times faster) and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, sort_keys=False, default=default) + "\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


#: Members every native ``.keras`` file holds.
KERAS_MEMBERS = ("config.json", "model.weights.h5")


def file_problem(path: str | os.PathLike, contents: tuple[str, ...] = ()) -> str | None:
    """What is wrong with a written file, or None if it opens and holds ``contents``.

    The file is opened and read whole by the reader of its kind, so a
    truncated or overwritten file is found: ``.nc`` with xarray (``contents``:
    variables), ``.json`` and ``.ipynb`` as JSON (``contents``: top-level keys),
    ``.keras`` as the zip archive Keras writes (every member's checksum is
    verified). Other files must exist and not be empty.

    Parameters
    ----------
    path : path-like
        The file.
    contents : tuple of str
        Variables (netCDF) or keys (JSON) it must hold.

    Returns
    -------
    str or None
        One phrase (``"missing"``, ``"empty"``, ``"unreadable netCDF (OSError: ...)"``,
        ``"lacks variable 'mask'"``), or None.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty"
    suffix = path.suffix.lower()
    try:
        if suffix == ".nc":
            with xr.open_dataset(path) as ds:
                ds.load()
                absent = [v for v in contents if v not in ds.variables]
            return f"lacks variable {absent[0]!r}" if absent else None
        if suffix in (".json", ".ipynb"):
            data = read_json(path)
            absent = [k for k in contents if not isinstance(data, dict) or k not in data]
            return f"lacks key {absent[0]!r}" if absent else None
        if suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                absent = [m for m in KERAS_MEMBERS if m not in archive.namelist()]
            if bad is not None:
                return f"corrupt member {bad!r} of the Keras archive"
            return f"lacks {absent[0]!r} of a Keras model" if absent else None
    except (OSError, ValueError, zipfile.BadZipFile, RuntimeError, KeyError) as err:
        kind = {".nc": "netCDF", ".keras": "Keras file"}.get(suffix, "JSON")
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"unreadable {kind} ({err.__class__.__name__}{': ' if detail else ''}{detail[:80]})"
    return None

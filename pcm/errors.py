"""Exceptions that carry a message a climate scientist can act on.

Bad input never surfaces as a traceback from deep inside TensorFlow or
netCDF: readers and the pipeline raise these, naming the file, the variable
and what was expected. The command line prints them as one line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from os import PathLike

__all__ = ["PCMError", "DataError", "ParameterError", "did_you_mean"]


class PCMError(Exception):
    """Base class of all errors that `pcm` reports to the user as one line."""


class DataError(PCMError, ValueError):
    """A data file is missing, malformed or inconsistent.

    Parameters
    ----------
    message : str
        What is wrong and what was expected.
    path : str or path-like, optional
        The file concerned; prefixed to the message.
    variable : str, optional
        The variable concerned; prefixed to the message.
    """

    def __init__(
        self, message: str, *, path: str | PathLike | None = None, variable: str | None = None
    ) -> None:
        self.path = None if path is None else str(path)
        self.variable = variable
        where = []
        if self.path is not None:
            where.append(self.path)
        if variable is not None:
            where.append(f"variable {variable!r}")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class ParameterError(PCMError, ValueError):
    """A run parameter (preset, params file or ``--set``) is invalid.

    Parameters
    ----------
    key : str
        Dotted name of the offending parameter (``data.train``, ``epochs``).
    message : str
        What is wrong and what was expected.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"parameter {key!r}: {message}")


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """The known name the user probably meant by ``name``, or None.

    A name that differs only in case (``qbp`` for ``QBP``, ``Epochs`` for
    ``epochs``) is matched first, then the closest spelling
    (:func:`difflib.get_close_matches`, cutoff 0.6).

    Examples
    --------
    >>> did_you_mean("qbp", ["QBP", "TBP"])
    'QBP'
    >>> did_you_mean("xyz", ["QBP", "TBP"]) is None
    True
    """
    known = [str(k) for k in known]
    same_case = [k for k in known if k.casefold() == name.casefold() and k != name]
    if same_case:
        return same_case[0]
    close = difflib.get_close_matches(name, [k for k in known if k != name], n=1, cutoff=0.6)
    return close[0] if close else None


def hint(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'QBP'?)"`` for :func:`did_you_mean`'s match, else ``""``."""
    match = did_you_mean(name, known)
    return f" (did you mean {match!r}?)" if match else ""

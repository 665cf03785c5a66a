"""Training data read from disk in blocks, for splits larger than a memory budget.

A :class:`DiskSplit` stands for one split of a run (a CBRAIN-layout netCDF file: the
synthetic data, user SPCAM files, or the files of ``pcm data climsim``) without
loading it. It reads contiguous *blocks* of rows (whole time steps where the file
records its chunking, ``pcm_chunk_rows``) and normalises them exactly as
:func:`pcm.data.datasets.load_split` does, so a block equals the same rows of the
in-memory arrays bit for bit.

Sample order of a streamed epoch (:func:`epoch_windows`), a function of ``(seed,
epoch)`` and the block layout only, so that a resumed run sees the same batches:

1. the blocks are permuted (``rng([seed, epoch, 1])``);
2. consecutive groups of ``window_blocks`` permuted blocks form a *window*, the
   shuffle buffer: it spans ``window_blocks`` blocks from anywhere in the split
   (many time steps), whose rows are permuted together (``rng([seed, epoch, 2, w])``);
3. batches are cut from the windows in order; rows left over at the end of a window
   open the next one, so every batch but the epoch's last is full.

Every sample is used exactly once per epoch. When the whole split fits one window the
order is :func:`pcm.nn.config.epoch_permutation`'s, the in-memory trainer's, and a
streamed epoch equals an in-memory one.

:func:`choose_in_memory` is the ``data.in_memory: auto|true|false`` rule, and
:func:`stream_layout` sizes blocks and windows from the memory budget. Nothing here
imports TensorFlow; :class:`pcm.nn.engine.Engine` feeds the windows through
``tf.data`` (prefetched while the previous window trains).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcm.data.cbrain import open_nc
from pcm.data.datasets import _check_finite, _columns
from pcm.data.normalization import Normalization
from pcm.errors import DataError, ParameterError

__all__ = ["IN_MEMORY_CHOICES", "DiskSplit", "StreamLayout", "stream_layout",
           "choose_in_memory", "epoch_windows", "in_memory_order", "split_nbytes"]

#: Values of ``data.in_memory``.
IN_MEMORY_CHOICES = ("auto", "true", "false")

#: Blocks per shuffle window (the buffer spans this many blocks of the split).
WINDOW_BLOCKS = 32


def split_nbytes(n_samples: int, n_columns: int, dtype: str = "float32") -> int:
    """Bytes of a split held in memory as normalised ``x`` and ``y``."""
    return int(n_samples) * int(n_columns) * np.dtype(dtype).itemsize


def choose_in_memory(setting: str, nbytes: int, budget_mb: float) -> bool:
    """Whether a split of ``nbytes`` is loaded into memory (``True``) or streamed.

    Parameters
    ----------
    setting : {"auto", "true", "false"}
        ``data.in_memory``; ``"auto"`` loads the split when it fits the budget.
    nbytes : int
        Size of the split in memory (:func:`split_nbytes`).
    budget_mb : float
        ``data.memory_budget_mb``.
    """
    setting = str(setting).lower()
    if setting not in IN_MEMORY_CHOICES:
        raise ParameterError("data.in_memory", f"must be one of {', '.join(IN_MEMORY_CHOICES)},"
                             f" got {setting!r}")
    if setting != "auto":
        return setting == "true"
    return nbytes <= float(budget_mb) * 2**20


@dataclass(frozen=True)
class StreamLayout:
    """How a streamed split is cut: rows per block and blocks per shuffle window."""

    block_rows: int
    window_blocks: int

    @property
    def window_rows(self) -> int:
        """Rows of one full window (the shuffle buffer)."""
        return self.block_rows * self.window_blocks


def stream_layout(row_bytes: int, budget_mb: float, *, align: int = 1,
                  window_blocks: int = WINDOW_BLOCKS) -> StreamLayout:
    """Block and window sizes that keep streaming within ``budget_mb``.

    About four windows are alive at once (the one training, the one prefetched, its
    read buffer and TensorFlow's copy), so a window is a quarter of the budget;
    blocks are a multiple of ``align`` rows (the file's chunk rows) when possible.
    """
    window_rows = max(1, int(float(budget_mb) * 2**20 / 4 / max(1, int(row_bytes))))
    block = max(1, window_rows // int(window_blocks))
    if align > 1 and block >= align:
        block -= block % align
    return StreamLayout(block_rows=int(block), window_blocks=int(window_blocks))


#: A read of one row costs about as much as reading this many rows of a block (on 2
#: cores, a 312-column ClimSim split: 0.1-0.18 ms per read, 1.1 us per row), so a block
#: with fewer rows asked of it than ``block_rows / SPARSE_ROWS`` is read row by row.
SPARSE_ROWS = 128


class DiskSplit:
    """One split of normalised training data, read from its file on demand.

    Parameters
    ----------
    path : path-like
        CBRAIN-layout file.
    norm : Normalization
        Statistics (the run's norm file).
    max_samples : int, optional
        Use the first ``max_samples`` rows only (as ``load_split(..., subset="head")``).
    dtype : str
        dtype of the arrays returned (``float32`` or ``float64``).
    budget_mb : float
        Memory budget that sizes blocks and windows (:func:`stream_layout`).
    layout : StreamLayout, optional
        Explicit block and window sizes (tests, benchmarks).
    """

    def __init__(self, path: str | os.PathLike, norm: Normalization, *,
                 max_samples: int | None = None, dtype: str = "float32",
                 budget_mb: float = 1024.0, layout: StreamLayout | None = None) -> None:
        self.path = Path(path)
        self.norm = norm
        self.dtype = np.dtype(dtype)
        cols, self._names, self._labels, n_file = _columns(self.path, norm)
        self._cols = np.asarray(cols, dtype=np.int64)
        self.n_inputs = norm.catalogue.n_inputs
        self.n_outputs = norm.catalogue.n_outputs
        self.n = n_file if max_samples is None else min(n_file, int(max_samples))
        with open_nc(self.path) as nc:
            align = int(getattr(nc, "pcm_chunk_rows", 1) or 1)
        row_bytes = (self.n_inputs + self.n_outputs) * self.dtype.itemsize
        self.layout = layout or stream_layout(row_bytes, budget_mb, align=align)
        self._nc = None

    # -- shape, identity --------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(samples, n_inputs)``, as the input array would have."""
        return (self.n, self.n_inputs)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (f"DiskSplit({str(self.path)!r}, n={self.n}, block_rows="
                f"{self.layout.block_rows}, window_blocks={self.layout.window_blocks})")

    @property
    def n_blocks(self) -> int:
        """Blocks of the split (the last one may be short)."""
        return -(-self.n // self.layout.block_rows)

    def digest(self) -> str:
        """Identity of the data for checkpoints: file, size, mtime, rows, columns, norm, layout."""
        st = self.path.stat()
        h = hashlib.blake2b(digest_size=12)
        for part in (str(self.path.resolve()), st.st_size, st.st_mtime_ns, self.n,
                     self._cols.tobytes(), self.norm.input_mean.tobytes(),
                     self.norm.input_scale.tobytes(), self.norm.output_scale.tobytes(),
                     self.layout.block_rows, self.layout.window_blocks, str(self.dtype)):
            h.update(part if isinstance(part, bytes) else str(part).encode())
        return h.hexdigest()

    # -- reading ----------------------------------------------------------------
    @contextmanager
    def reading(self) -> Iterator[None]:
        """Keep the file open for the reads inside the block (else each read opens it).

        The file is never left open between reads: netCDF4 crashes when a file that
        an earlier, unfinished reader still holds is opened again in the process.
        """
        if self._nc is not None:
            yield
            return
        self._nc = open_nc(self.path)
        try:
            yield
        finally:
            self._nc.close()
            self._nc = None

    def close(self) -> None:
        """Close the file if a read left it open (it reopens on the next read)."""
        if self._nc is not None:
            self._nc.close()
            self._nc = None

    def __getstate__(self):
        raise TypeError("DiskSplit holds an open file; pass the path instead")

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised ``(x, y)`` of rows ``lo:hi``, equal to those rows of ``load_split``."""
        lo, hi = max(0, int(lo)), min(self.n, int(hi))
        c = self._cols
        with self.reading():
            var = self._nc.variables["vars"]
            if c.size and np.array_equal(c, np.arange(c[0], c[0] + c.size)):
                rows = np.asarray(var[lo:hi, int(c[0]):int(c[0] + c.size)], dtype=np.float32)
            else:
                rows = np.asarray(var[lo:hi, :], dtype=np.float32)[:, c]
            fill = getattr(var, "_FillValue", None)
        if fill is not None and np.isfinite(fill):
            rows[rows == np.float32(fill)] = np.nan
        _check_finite(rows, lo, self.path, self._names, self._labels)
        x = np.empty((hi - lo, self.n_inputs), dtype=self.dtype)
        y = np.empty((hi - lo, self.n_outputs), dtype=self.dtype)
        self.norm.normalize_inputs(rows[:, :self.n_inputs], out=x)
        self.norm.normalize_outputs(rows[:, self.n_inputs:], out=y)
        return x, y

    def read_block(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Block ``k``: rows ``k * block_rows`` up to the next block."""
        b = self.layout.block_rows
        return self.read(k * b, (k + 1) * b)

    def read_rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised rows at ``index`` (any order), read block by block (bounded memory).

        A block holding fewer than ``block_rows / SPARSE_ROWS`` of the rows asked for is
        not read whole: its rows are read one by one (a sample of 20,000 rows from
        ClimSim's 10 M would otherwise read the whole file).
        """
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.n):
            raise DataError(f"row index out of range [0, {self.n})", path=self.path)
        x = np.empty((index.size, self.n_inputs), dtype=self.dtype)
        y = np.empty((index.size, self.n_outputs), dtype=self.dtype)
        order = np.argsort(index, kind="stable")
        blocks = index[order] // self.layout.block_rows
        with self.reading():
            for k in np.unique(blocks):
                sel = order[blocks == k]
                if sel.size * SPARSE_ROWS < self.layout.block_rows:
                    for i in sel:
                        bx, by = self.read(int(index[i]), int(index[i]) + 1)
                        x[i], y[i] = bx[0], by[0]
                    continue
                bx, by = self.read_block(int(k))
                local = index[sel] - int(k) * self.layout.block_rows
                x[sel], y[sel] = bx[local], by[local]
        return x, y

    def iter_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All blocks in file order (evaluation)."""
        for k in range(self.n_blocks):
            yield self.read_block(k)


def in_memory_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The in-memory trainer's sample order (:func:`pcm.nn.config.epoch_permutation`,
    which sits in a layer above this one; a test checks that both agree)."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n))


def epoch_windows(split: DiskSplit, seed: int, epoch: int, batch_size: int
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The windows of one streamed epoch, each a whole number of batches (but the last).

    See the module docstring for the order. Yields normalised ``(x, y)``; the
    concatenation of all yields holds every row of the split exactly once.
    """
    n, layout = split.n, split.layout
    if split.n_blocks <= layout.window_blocks:  # one window: the in-memory order
        x, y = split.read(0, n)
        perm = in_memory_order(n, seed, epoch)
        yield x[perm], y[perm]
        return
    blocks = np.random.default_rng([int(seed), int(epoch), 1]).permutation(split.n_blocks)
    carry: tuple[np.ndarray, np.ndarray] | None = None
    n_windows = -(-len(blocks) // layout.window_blocks)
    for w in range(n_windows):
        with split.reading():
            parts = [split.read_block(int(k))
                     for k in blocks[w * layout.window_blocks:(w + 1) * layout.window_blocks]]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        del parts
        perm = np.random.default_rng([int(seed), int(epoch), 2, w]).permutation(len(x))
        x, y = x[perm], y[perm]
        if carry is not None:
            x, y = np.concatenate([carry[0], x]), np.concatenate([carry[1], y])
            carry = None
        if w < n_windows - 1:
            full = len(x) - len(x) % int(batch_size)
            if full < len(x):
                carry = (x[full:], y[full:])
                x, y = x[:full], y[:full]
        if len(x):
            yield x, y

"""How a run's time steps split into train, valid and test (consecutive blocks)."""

from __future__ import annotations

from pcm.errors import ParameterError

__all__ = ["SPLIT_FRACTIONS", "split_steps"]

#: Fractions of the time steps for train, valid and test (consecutive blocks).
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


def split_steps(
    steps: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
) -> dict[str, slice]:
    """Consecutive time-step blocks of train, valid and test (each at least 1 step).

    Examples
    --------
    >>> split_steps(96)
    {'train': slice(0, 68, None), 'valid': slice(68, 82, None), 'test': slice(82, 96, None)}
    """
    if steps < 3:
        raise ParameterError(
            "steps", f"need at least 3 time steps (train, valid, test), got {steps}"
        )
    n_valid = max(1, round(fractions[1] * steps))
    n_test = max(1, round(fractions[2] * steps))
    n_train = steps - n_valid - n_test
    if n_train < 1:
        n_train, n_valid, n_test = 1, 1, steps - 2
    return {
        "train": slice(0, n_train),
        "valid": slice(n_train, n_train + n_valid),
        "test": slice(n_train + n_valid, steps),
    }

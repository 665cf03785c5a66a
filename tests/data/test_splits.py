"""A run's time steps cut into train, valid and test."""

from __future__ import annotations

import pytest

from pcm.data.splits import split_steps
from pcm.errors import ParameterError


def test_split_steps():
    assert split_steps(96) == {"train": slice(0, 68), "valid": slice(68, 82), "test": slice(82, 96)}
    assert split_steps(3) == {"train": slice(0, 1), "valid": slice(1, 2), "test": slice(2, 3)}
    for steps in range(3, 40):
        blocks = split_steps(steps)
        assert all(s.stop - s.start >= 1 for s in blocks.values())
        assert blocks["test"].stop == steps
    with pytest.raises(ParameterError, match="steps"):
        split_steps(2)

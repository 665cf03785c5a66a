"""The tolerance with which nbval compares the numbers of the reference notebooks
(tests/nbval_tolerance.py, used by tests/notebooks/conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nbval.plugin import get_sanitize_patterns
from nbval_tolerance import ABS_TOL, REL_TOL, align_numbers, numbers_agree, texts_agree

SANITIZE = Path(__file__).parent / "notebooks" / "sanitize.cfg"


def sanitize(text: str) -> str:
    """What nbval does to both sides with sanitize.cfg."""
    for regex, replace in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replace, text)
    return text


def agree(reference: str, fresh: str) -> bool:
    return texts_agree(sanitize(reference), sanitize(fresh))


@pytest.mark.parametrize(
    ("reference", "fresh"),
    [
        ("0.0468315", "0.0468315"),
        ("0.0468315", "0.0471"),  # +0.6 %
        ("0.0468315", "0.0446"),  # -4.8 %
        ("-12.72", "-12.2"),  # R² far below zero: relative
        ("-0.03", "-0.01"),  # R² near zero, two decimals: absolute
        ("0.64", "0.66"),
        ("4e-05", "4.1e-05"),
        ("6.7e-06", "6.9e-06"),
        ("12", "12"),
    ],
)
def test_numbers_within_the_tolerance_agree(reference, fresh):
    assert numbers_agree(reference, fresh)


@pytest.mark.parametrize(
    ("reference", "fresh"),
    [
        ("0.0468315", "0.0500"),  # +6.8 %
        ("0.0468315", "0.0440"),  # -6.0 %
        ("0.064", "0.068"),  # three decimals: relative only
        ("0.001", "0.0002"),  # a learning rate is not an R²: no absolute tolerance
        ("-0.03", "0.01"),
        ("0.64", "0.68"),
        ("6.7e-06", "7.2e-06"),
        ("12", "13"),  # an unmarked integer is exact
        ("8704", "8705"),
    ],
)
def test_numbers_outside_the_tolerance_differ(reference, fresh):
    assert not numbers_agree(reference, fresh)


def test_the_stated_tolerance():
    # relative to the larger of the two
    assert numbers_agree("1.0", f"{1 - 0.99 * REL_TOL:.4f}")
    assert not numbers_agree("1.0", f"{1 - 1.01 * REL_TOL:.4f}")
    assert numbers_agree("0.00", f"{0.99 * ABS_TOL:.2f}")
    assert not numbers_agree("0.00", f"{2 * ABS_TOL:.2f}")


def test_marked_counts_have_the_tolerance_and_two_counts():
    assert numbers_agree("1127", "1150", count=True)  # 2 %
    assert not numbers_agree("1127", "1200", count=True)  # 6.1 %
    assert numbers_agree("14", "12", count=True)  # two counts
    assert not numbers_agree("14", "11", count=True)
    assert not numbers_agree("14", "12")  # unmarked: exact


def test_align_writes_agreeing_numbers_as_in_the_reference():
    reference = "premask: epoch 2/12 loss=0.0585448 val_loss=0.0580663 lr=0.001"
    fresh = "premask: epoch 2/12 loss=0.0585445 val_loss=0.0580602 lr=0.001"
    assert align_numbers(reference, fresh) == reference
    moved = "premask: epoch 2/12 loss=0.0685448 val_loss=0.0580602 lr=0.001"
    assert align_numbers(reference, moved) == (
        "premask: epoch 2/12 loss=0.0685448 val_loss=0.0580663 lr=0.001"
    )


@pytest.mark.parametrize(
    ("reference", "fresh"),
    [
        ("premask: epoch 2/12 loss=0.0585448", "premask: epoch 3/12 loss=0.0585448"),
        ("lowest mean R²: PHQ", "lowest mean R²: FLNS"),  # different text
        ("pcmasking precision 0.19", "causal precision 0.19"),
        ("outputs phq-3.64, phq-7.59", "outputs phq-3.70, phq-7.59"),  # a level is a word
        ("mean 0.5, max 0.9", "mean 0.5"),  # fewer numbers
        ("loss=0.05", "loss=0.05 nan"),
    ],
)
def test_different_text_differs(reference, fresh):
    assert not texts_agree(reference, fresh)


def test_sanitize_masks_timings_and_paths_only():
    assert agree(
        "premask: epoch 1/12 loss=0.144739 val_loss=0.0698859 lr=0.001 (4.0 s)\n",
        "premask: epoch 1/12 loss=0.144738 val_loss=0.0698854 lr=0.001 (11.7 s)\n",
    )
    assert not agree(
        "premask: epoch 1/12 loss=0.144739 (4.0 s)\n", "premask: epoch 1/12 loss=0.164739 (4.0 s)\n"
    )
    assert agree(
        "/tmp/a/_nbval_run/data/train.nc: 8704 samples",
        "/home/b/_nbval_run/data/train.nc: 8704 samples",
    )
    assert not agree("train.nc: 8704 samples x 159 columns", "train.nc: 8448 samples x 159 columns")


def test_a_table_whose_numbers_move_within_the_tolerance_agree():
    reference = (
        "model        TPHYSTND   PHQ\n"
        "unconstrained     -0.03 -3.12\n"
        "pcmasking          0.64  0.14\n"
    )
    fresh = (
        "model        TPHYSTND    PHQ\n"
        "unconstrained     -0.01  -3.20\n"
        "pcmasking          0.65   0.14\n"
    )
    assert agree(reference, fresh)
    assert not agree(reference, fresh.replace("0.65", "0.70"))


@pytest.mark.parametrize(
    ("reference", "fresh", "same"),
    [
        (
            "causal masks keep 1127 of 6110 links, from 16 columns; 120 candidate networks trained",
            "causal masks keep 1140 of 6110 links, from 16 columns; 121 candidate networks trained",
            True,
        ),
        (
            "causal masks keep 1127 of 6110 links, from 16 columns",
            "causal masks keep 1127 of 6110 links, from 17 columns",
            False,
        ),  # configuration
        (
            "inputs kept per output: median 25, min 14, max 43 of 94",
            "inputs kept per output: median 26, min 13, max 44 of 94",
            True,
        ),
        (
            "inputs kept per output: median 25, min 14, max 43 of 94",
            "inputs kept per output: median 25, min 14, max 43 of 95",
            False,
        ),  # the inputs
        (
            "network 0 ignores 64 inputs; max change of its output: 0.0",
            "network 0 ignores 63 inputs; max change of its output: 0.0",
            True,
        ),
        (
            "network 0 ignores 64 inputs; max change of its output: 0.0",
            "network 0 ignores 64 inputs; max change of its output: 0.3",
            False,
        ),
        (
            "train_loss picks another threshold for 9 of 65 outputs",
            "train_loss picks another threshold for 10 of 65 outputs",
            True,
        ),
        (
            "validation loss 0.00108 → 0.00072 (fell 33 %)",
            "validation loss 0.00109 → 0.000721 (fell 34 %)",
            True,
        ),
        (
            "8704 samples = 68 time steps x 8 lat x 16 lon",
            "8704 samples = 67 time steps x 8 lat x 16 lon",
            False,
        ),
    ],
)
def test_weight_dependent_counts_are_marked_for_the_tolerance(reference, fresh, same):
    assert agree(reference, fresh) is same

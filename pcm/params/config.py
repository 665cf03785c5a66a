"""One configuration object per step of the method, built once from the run parameters.

The run parameters (:data:`pcm.params.presets.PARAMETERS`) are the single source of names
and defaults. Each step of the pipeline gets one frozen dataclass whose fields are
exactly the parameters that step reads, named as inside a notebook (``data.train``
is ``data_train``). A notebook's ``parameters`` cell declares the same names with
the same defaults (a test checks it), and builds its configuration with one call::

    config = PremaskConfig.from_parameters(globals())

so the object is passed whole to the step's functions: nothing unpacks and
repacks the training keywords along the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Self

from pcm.nn.config import TrainConfig
from pcm.params.presets import PAPER_RULE, PARAMETERS, notebook_name

__all__ = ["StepConfig", "TrainingStep", "ArchitectureStep", "NetworkStep", "DataConfig",
           "PremaskConfig",
           "SearchConfig", "FinetuneConfig", "CausalConfig", "EvaluationConfig", "ShapConfig",
           "STEP_CONFIGS"]

_BY_NOTEBOOK_NAME = {notebook_name(key): key for key in PARAMETERS}


@dataclass(frozen=True)
class StepConfig:
    """Base of the step configurations: building from parameters, defaults from PARAMETERS."""

    @classmethod
    def parameter_names(cls) -> list[str]:
        """The notebook names of this step's parameters, in field order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default, from :data:`pcm.params.presets.PARAMETERS`."""
        return {name: PARAMETERS[_BY_NOTEBOOK_NAME[name]].default
                for name in cls.parameter_names()}

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> Self:
        """Pick this step's parameters from a mapping; absent ones take their default.

        Parameters
        ----------
        params : mapping
            Notebook names (``data_train``) or dotted keys (``data.train``) to
            values, e.g. the resolved parameters of a run or a notebook's ``globals()``.
        """
        values = cls.defaults()
        for name in values:
            key = _BY_NOTEBOOK_NAME[name]
            if name in params:
                values[name] = params[name]
            elif key in params:
                values[name] = params[key]
        return cls(**values)


@dataclass(frozen=True)
class DataConfig(StepConfig):
    """Step 1, data preparation: where the data come from."""

    seed: int
    data_source: str
    data_steps: int
    data_n_lat: int | None
    data_n_lon: int | None
    data_world: int
    data_train: str | None
    data_valid: str | None
    data_test: str | None
    data_norm: str | None
    data_plus4K: str | None
    data_minus4K: str | None
    data_dir: str | None

    @property
    def paths(self) -> dict[str, str | None]:
        """User data files by split name (``train valid test norm plus4K minus4K``).

        For ``climsim`` the four files of ``data_dir`` (``pcm data climsim --out``).
        """
        if self.data_source == "climsim" and self.data_dir is not None:
            folder = Path(self.data_dir)
            return {name: str(folder / f"{name}.nc") for name in ("train", "valid", "test",
                                                                  "norm")}
        return {name: getattr(self, f"data_{name}")
                for name in ("train", "valid", "test", "norm", "plus4K", "minus4K")}


@dataclass(frozen=True)
class TrainingStep(StepConfig):
    """Optimisation parameters shared by every step that trains networks."""

    seed: int
    batch_size: int
    learning_rate: float
    lr_divisor: float
    lr_every: int
    max_samples: int | None
    compute_dtype: str
    data_in_memory: str
    data_memory_budget_mb: float
    devices: int | None
    schedule: str
    plateau_patience: int
    plateau_min_delta: float
    stop_patience: int
    max_epochs: int

    def train_config(self, *, hidden_units: tuple[int, ...], epochs: int,
                     l1: float | tuple[float, ...] = 0.0,
                     fixed: bool = False) -> TrainConfig:
        """The engine's :class:`~pcm.nn.config.TrainConfig` for one phase of this step.

        Under ``schedule: plateau`` every phase trains to convergence: at most
        ``max_epochs`` epochs (``epochs`` is not used), early stopping after
        ``stop_patience``. ``fixed=True`` (the threshold-search networks) keeps the
        step schedule for ``epochs`` epochs whatever the run's schedule.
        """
        plateau = self.schedule == "plateau" and not fixed
        return TrainConfig(hidden_units=hidden_units,
                           epochs=self.max_epochs if plateau else epochs,
                           batch_size=self.batch_size, learning_rate=self.learning_rate,
                           lr_divisor=self.lr_divisor, lr_every=self.lr_every, l1=l1,
                           patience=self.stop_patience if plateau else None,
                           schedule="plateau" if plateau else "step",
                           plateau_patience=self.plateau_patience,
                           plateau_min_delta=self.plateau_min_delta,
                           seed=self.seed, compute_dtype=self.compute_dtype,
                           max_train_samples=self.max_samples,
                           in_memory=self.data_in_memory,
                           memory_budget_mb=self.data_memory_budget_mb, devices=self.devices)


@dataclass(frozen=True)
class ArchitectureStep(TrainingStep):
    """Training steps that build networks of their own architecture from scratch."""

    hidden_layers: int
    hidden_units: int

    @property
    def hidden(self) -> tuple[int, ...]:
        """Widths of the hidden layers."""
        return (int(self.hidden_units),) * int(self.hidden_layers)


@dataclass(frozen=True)
class NetworkStep(ArchitectureStep):
    """Steps training networks of their own architecture for ``epochs`` epochs."""

    epochs: int


@dataclass(frozen=True)
class PremaskConfig(NetworkStep):
    """Step 2: pre-masking networks (and the unconstrained baseline of the same size)."""

    l1: float


@dataclass(frozen=True)
class SearchConfig(TrainingStep):
    """Step 3: masking vectors and the per-output threshold search."""

    n_thresholds: int
    threshold_percentile: float
    search_epochs: int
    search_stack: int | None
    search_halving: bool
    search_final: bool
    selection: str
    selection_tolerance: float
    selection_ratio: float
    ranking: str
    ranking_samples: int
    ranking_steps: int
    adaptive_gamma: float
    stability_runs: int
    stability_weakness: float
    stability_share: float
    knockoff_fdr: float
    knockoff_plus: bool
    screen: str
    screen_alpha: float
    screen_min_share: float
    screen_samples: int
    paper_rule: bool  # the notebook runs search_paper_rule when it is set

    def paper_rule_config(self) -> SearchConfig:
        """This search with the paper's selection rule (:data:`pcm.params.presets.PAPER_RULE`)
        on the L1 row norms, without a screen, fine-tuned after the search."""
        return replace(self, search_final=False, search_halving=False, paper_rule=False,
                       **PAPER_RULE)


@dataclass(frozen=True)
class FinetuneConfig(TrainingStep):
    """Step 4: fine-tuning the masked networks."""

    finetune_epochs: int
    search_final: bool
    paper_rule: bool  # the notebook also fine-tunes the paper's rule's masks when it is set


@dataclass(frozen=True)
class CausalConfig(ArchitectureStep):
    """Step 4, the causally-informed comparison: discovery and its networks.

    The networks have the architecture of the pre-masking phase and train for
    ``causal_epochs`` (the reference: 18, twice the pre-masking epochs).
    """

    causal: bool
    causal_pc_alpha: float
    causal_share: float
    causal_columns: int | None
    causal_steps: int | None
    causal_rule: str
    causal_quantiles: int
    causal_epochs: int
    causal_scheduler: str | None


@dataclass(frozen=True)
class EvaluationConfig(StepConfig):
    """Step 5: R² on the test splits."""

    eval_samples: int | None
    data_in_memory: str = PARAMETERS["data.in_memory"].default
    data_memory_budget_mb: float = PARAMETERS["data.memory_budget_mb"].default


@dataclass(frozen=True)
class ShapConfig(StepConfig):
    """Step 6: SHAP attributions and the summary."""

    seed: int
    shap_background: int
    shap_samples: int


#: The configurations each notebook of the pipeline builds, by notebook name.
STEP_CONFIGS: dict[str, tuple[type[StepConfig], ...]] = {
    "01_data": (DataConfig,),
    "02_premasking": (PremaskConfig,),
    "03_masking_vectors_thresholds": (SearchConfig,),
    "04_finetuning": (FinetuneConfig, CausalConfig),
    "05_r2_evaluation": (EvaluationConfig,),
    "06_shap_drivers": (ShapConfig,),
}

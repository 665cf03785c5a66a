"""Many independent single-output MLPs as one stacked Keras model.

PCMasking trains one network per output (SPCAM: 65), and the threshold search one
per output and threshold. Built one by one, each Keras model costs seconds to
construct and trace; stacked, all networks share one compiled step. Every
layer holds ``[n_networks, in, out]`` kernels and is applied with a batched
matmul, so network ``n`` only ever touches slice ``n`` of every weight: the
networks stay mathematically independent, and summing their losses trains each
exactly as if it were alone (Adam and its moments are element-wise).

Network ``n`` of a :class:`StackedMLP` computes, for input ``x`` (``n_inputs`` values,
the data's catalogue's: SPCAM 94, ClimSim 184)::

    z = LeakyReLU(W_in[n]^T (x * m[n]) + b_in[n])        # pre-masking only
    h = LeakyReLU(W_k[n]^T h + b_k[n])  for each hidden layer
    y[n] = W_out[n]^T h + b_out[n]

with ``m[n]`` a fixed (non-trainable) input mask, all ones unless set. The
mask is folded into the first kernel, ``(x*m) W = x (diag(m) W)``, so masking
costs nothing and the gradients of masked rows are exactly zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from pcm.variables import SPCAM

__all__ = ["StackedDense", "StackedMLP", "glorot_limit"]

#: Negative slope of the LeakyReLU of the reference implementation.
NEGATIVE_SLOPE = 0.3


def glorot_limit(fan_in: int, fan_out: int) -> float:
    """Glorot-uniform limit of ONE network's kernel (not of the stacked tensor)."""
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


@keras.saving.register_keras_serializable(package="pcm")
class StackedDense(keras.layers.Layer):
    """``n_networks`` independent dense layers, one per stacked network.

    Parameters
    ----------
    n_networks : int
        Number of stacked networks.
    units : int
        Output width of each network's layer.
    shared_input : bool
        True if every network receives the same ``(batch, in)`` input (first
        layer); False for per-network ``(n_networks, batch, in)`` inputs.
    init : {"glorot", "normal"}
        Kernel initialisation: Glorot uniform with each network's own fan-in
        and fan-out, or RandomNormal(0, 0.01) (the pre-masking input layer).
    seed : int
        Seed of the kernel initialiser.
    """

    def __init__(self, n_networks: int, units: int, *, shared_input: bool = False,
                 init: str = "glorot", seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_networks = int(n_networks)
        self.units = int(units)
        self.shared_input = bool(shared_input)
        self.init = init
        self.seed = int(seed)

    def build(self, input_shape) -> None:
        fan_in = int(input_shape[-1])
        if self.init == "normal":
            initializer = keras.initializers.RandomNormal(0.0, 0.01, seed=self.seed)
        elif self.init == "glorot":
            limit = glorot_limit(fan_in, self.units)
            initializer = keras.initializers.RandomUniform(-limit, limit, seed=self.seed)
        else:
            raise ValueError(f"unknown init {self.init!r}; expected 'glorot' or 'normal'")
        self.kernel = self.add_weight(shape=(self.n_networks, fan_in, self.units),
                                      initializer=initializer, name="kernel")
        self.bias = self.add_weight(shape=(self.n_networks, self.units),
                                    initializer="zeros", name="bias")

    def apply_kernel(self, x, kernel):
        """Apply ``kernel`` (possibly masked) and the bias to ``x``."""
        if self.shared_input:
            y = ops.einsum("bi,nio->nbo", x, kernel)
        else:
            y = ops.matmul(x, kernel)
        return y + ops.expand_dims(self.bias, 1)

    def call(self, x):
        return self.apply_kernel(x, self.kernel)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_networks": self.n_networks, "units": self.units,
                "shared_input": self.shared_input, "init": self.init, "seed": self.seed}


@keras.saving.register_keras_serializable(package="pcm")
class StackedMLP(keras.Model):
    """A stack of independent single-output MLPs sharing one input vector.

    Parameters
    ----------
    n_networks : int
        Number of stacked networks.
    hidden_units : sequence of int
        Width of each hidden layer (reference: nine layers of 256).
    n_inputs : int
        Number of inputs. The default is SPCAM's 94 (tests, benchmarks on the
        synthetic SPCAM layout); ``pcm`` itself always passes its run's
        ``RunDir.catalogue.n_inputs`` (``tests/test_package_data.py`` checks that).
    input_layer : bool
        True for pre-masking networks: a square ``Dense(n_inputs)`` input layer
        initialised RandomNormal(0, 0.01), whose kernel the L1 penalty acts on.
    targets : sequence of int, optional
        Index of the output that each network predicts (default ``0..N-1``).
    negative_slope : float
        LeakyReLU slope (0.3).
    seed : int
        Seed of all initialisers (layer ``k`` uses ``seed + k``).

    Notes
    -----
    ``model(x)`` maps ``(batch, n_inputs)`` to ``(batch, n_networks)``.
    """

    def __init__(self, n_networks: int, hidden_units: Sequence[int] = (256,) * 9, *,
                 n_inputs: int = SPCAM.n_inputs, input_layer: bool = False,
                 targets: Sequence[int] | np.ndarray | None = None,
                 negative_slope: float = NEGATIVE_SLOPE, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_networks = int(n_networks)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.n_inputs = int(n_inputs)
        self.has_input_layer = bool(input_layer)
        targets = range(self.n_networks) if targets is None else targets
        self.targets = tuple(int(t) for t in targets)
        if len(self.targets) != self.n_networks:
            raise ValueError(f"targets has {len(self.targets)} entries for {n_networks} networks")
        self.negative_slope = float(negative_slope)
        self.seed = int(seed)

        widths = ([self.n_inputs] if self.has_input_layer else []) + list(self.hidden_units) + [1]
        inits = ["glorot"] * len(widths)
        if self.has_input_layer:
            inits[0] = "normal"
        self.dense = [
            StackedDense(self.n_networks, units, shared_input=(k == 0), init=init,
                         seed=self.seed + k, dtype=self.dtype_policy, name=f"dense_{k}")
            for k, (units, init) in enumerate(zip(widths, inits, strict=True))
        ]
        self.mask = self.add_weight(shape=(self.n_networks, self.n_inputs), initializer="ones",
                                    trainable=False, name="mask")
        self.build((None, self.n_inputs))

    def build(self, input_shape) -> None:
        if self.built:
            return
        shape = (None, self.n_inputs)
        for layer in self.dense:
            layer.build(shape)
            shape = (self.n_networks, None, layer.units)
        self.built = True

    def call(self, x):
        first = self.dense[0]
        kernel = first.kernel * ops.expand_dims(ops.cast(self.mask, first.kernel.dtype), -1)
        h = first.apply_kernel(x, kernel)
        for layer in self.dense[1:]:
            h = layer(ops.leaky_relu(h, negative_slope=self.negative_slope))
        return ops.transpose(ops.squeeze(h, -1))  # (batch, n_networks)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_networks": self.n_networks,
                "hidden_units": list(self.hidden_units), "n_inputs": self.n_inputs,
                "input_layer": self.has_input_layer, "targets": list(self.targets),
                "negative_slope": self.negative_slope, "seed": self.seed}

    # -- weights ------------------------------------------------------------
    @property
    def input_kernel(self):
        """The L1-penalised square input kernel ``(N, in, in)`` (pre-masking only)."""
        if not self.has_input_layer:
            raise AttributeError("this model has no input layer (it is not a pre-masking model)")
        return self.dense[0].kernel

    def masking_vectors(self) -> np.ndarray:
        """L2 norm of each input's row of the input kernel, ``(N, n_inputs)``."""
        return np.linalg.norm(np.asarray(self.input_kernel), axis=2)

    def set_mask(self, mask: np.ndarray) -> None:
        """Set the fixed input mask, ``(N, n_inputs)`` booleans or 0/1."""
        mask = np.asarray(mask)
        if mask.shape != (self.n_networks, self.n_inputs):
            raise ValueError(f"mask must have shape {(self.n_networks, self.n_inputs)}, "
                             f"got {mask.shape}")
        self.mask.assign(mask.astype(self.mask.dtype))

    def get_mask(self) -> np.ndarray:
        """The input mask as booleans, ``(N, n_inputs)``."""
        return np.asarray(self.mask) > 0.5

    def layer_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(kernel, bias)`` of every layer as numpy, the mask folded into the first."""
        out = [(np.asarray(d.kernel), np.asarray(d.bias)) for d in self.dense]
        out[0] = (out[0][0] * self.get_mask()[:, :, None], out[0][1])
        return out

    # -- derived models -------------------------------------------------------
    def select(self, indices: Sequence[int] | np.ndarray) -> StackedMLP:
        """A new stacked model holding copies of networks ``indices`` (repeats allowed)."""
        indices = np.asarray(indices, dtype=int)
        new = StackedMLP(len(indices), self.hidden_units, n_inputs=self.n_inputs,
                         input_layer=self.has_input_layer,
                         targets=[self.targets[i] for i in indices],
                         negative_slope=self.negative_slope, seed=self.seed,
                         dtype=self.dtype_policy)
        for src, dst in zip(self.dense, new.dense, strict=True):
            dst.kernel.assign(np.asarray(src.kernel)[indices])
            dst.bias.assign(np.asarray(src.bias)[indices])
        new.mask.assign(np.asarray(self.mask)[indices])
        return new

    def repeat(self, copies: int) -> StackedMLP:
        """``copies`` copies of the whole stack, one after the other (``copies * N`` networks).

        Copy ``j`` holds networks ``j*N .. (j+1)*N - 1``, each identical to network
        ``n`` of this stack: the stack of a sweep over values that only change the
        loss (one λ per copy), so that every copy starts from the same weights as a
        separate run would.
        """
        if int(copies) < 1:
            raise ValueError(f"copies must be >= 1, got {copies}")
        return self.select(np.tile(np.arange(self.n_networks), int(copies)))

    def to_masking(self, masks: np.ndarray,
                   indices: Sequence[int] | np.ndarray | None = None) -> StackedMLP:
        """Masking networks that start from this pre-masking model's hidden/output weights.

        Parameters
        ----------
        masks : array of bool, ``(len(indices), n_inputs)``
            Binary input mask of each new network.
        indices : sequence of int, optional
            Which pre-masking network each new network starts from (default all).

        Returns
        -------
        StackedMLP
            Without input layer; its first hidden layer takes the masked inputs.
        """
        if not self.has_input_layer:
            raise ValueError("to_masking needs a pre-masking model (with an input layer)")
        indices = np.arange(self.n_networks) if indices is None else np.asarray(indices, int)
        new = StackedMLP(len(indices), self.hidden_units, n_inputs=self.n_inputs,
                         input_layer=False, targets=[self.targets[i] for i in indices],
                         negative_slope=self.negative_slope, seed=self.seed,
                         dtype=self.dtype_policy)
        for src, dst in zip(self.dense[1:], new.dense, strict=True):
            dst.kernel.assign(np.asarray(src.kernel)[indices])
            dst.bias.assign(np.asarray(src.bias)[indices])
        new.set_mask(masks)
        return new

    def export_network(self, n: int) -> keras.Sequential:
        """Network ``n`` as an ordinary Keras model (Dense + LeakyReLU layers).

        The mask is folded into the first kernel, so the exported model gives
        the same predictions and can be saved in the native ``.keras`` format
        and explained by ``shap.DeepExplainer``.
        """
        weights = self.layer_weights()
        layers: list = [keras.Input((self.n_inputs,))]
        for k, (kernel, _) in enumerate(weights):
            layers.append(keras.layers.Dense(kernel.shape[-1], name=f"dense_{k}"))
            if k < len(weights) - 1:
                layers.append(keras.layers.LeakyReLU(negative_slope=self.negative_slope))
        model = keras.Sequential(layers, name=f"network_{n}")
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        for layer, (kernel, bias) in zip(dense, weights, strict=True):
            layer.set_weights([kernel[n], bias[n]])
        return model

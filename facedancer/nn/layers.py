"""Custom layers of the FaceDancer networks.

The class names (`AdaIN`, `AdaptiveAttention`, `InstanceNormalization`) are the ones the original's
model files record, so the legacy reader can map them one to one.
"""

from __future__ import annotations

import keras

PACKAGE = "facedancer"


@keras.saving.register_keras_serializable(package=PACKAGE)
class InstanceNormalization(keras.layers.GroupNormalization):
    """Instance norm as group norm with one group per channel (tensorflow-addons' definition).

    `groups` is accepted because the original's files store it (equal to the channel count);
    -1 means one group per channel.
    """

    def __init__(self, groups: int = -1, epsilon: float = 1e-3, **kwargs):
        super().__init__(groups=groups, epsilon=epsilon, **kwargs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AdaIN(keras.layers.Layer):
    """Adaptive instance modulation: `gamma(z) * x + beta(z)`.

    Called on `[x, z]`; the normalisation itself is a separate `InstanceNormalization` before it,
    as in the original, so this layer only modulates.
    """

    def build(self, input_shape):
        x_shape, z_shape = input_shape
        channels = int(x_shape[-1])
        self.gamma_dense = keras.layers.Dense(channels, name="dense", dtype=self.dtype_policy)
        self.beta_dense = keras.layers.Dense(channels, name="dense_1", dtype=self.dtype_policy)
        self.gamma_dense.build(z_shape)
        self.beta_dense.build(z_shape)

    def call(self, inputs):
        x, z = inputs
        gamma = self.gamma_dense(z)[:, None, None, :]
        beta = self.beta_dense(z)[:, None, None, :]
        return gamma * x + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class AdaptiveAttention(keras.layers.Layer):
    """Blend of encoder (x_t) and decoder (x_s) features by a learned mask m: (1 - m)·x_t + m·x_s.

    Called on `[m, x_t, x_s]`, the argument order of the original's files.
    """

    def call(self, inputs):
        mask, x_t, x_s = inputs
        return x_t + mask * (x_s - x_t)  # = (1 - m)·x_t + m·x_s with one pass fewer over the feature map

    def compute_output_shape(self, input_shape):
        return input_shape[1]


@keras.saving.register_keras_serializable(package=PACKAGE)
class TFOpLayer(keras.layers.Layer):
    """A TensorFlow op recorded by Keras 2 as `TFOpLambda` (e.g. a raw `*` between tensors).

    `function` is the path below `tf` (`"math.multiply"`); `call_spec` says, for each positional
    and keyword argument, whether it is the i-th input tensor or a constant.
    """

    def __init__(self, function: str, call_spec: dict, **kwargs):
        super().__init__(**kwargs)
        self.function = function
        self.call_spec = call_spec
        self._fn = resolve_tf_function(function)

    def call(self, inputs):
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]

        def value(spec):
            return tensors[spec["tensor"]] if "tensor" in spec else spec["value"]

        args = [value(s) for s in self.call_spec.get("args", [])]
        kwargs = {k: value(s) for k, s in self.call_spec.get("kwargs", {}).items()}
        return self._fn(*args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "function": self.function, "call_spec": self.call_spec}


def resolve_tf_function(path: str):
    """`"math.multiply"` -> `tf.math.multiply`; raises ValueError for anything else."""
    import tensorflow as tf

    target = tf
    for part in path.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"unknown TensorFlow function tf.{path}")
    if not callable(target):
        raise ValueError(f"tf.{path} is not a function")
    return target


def custom_objects() -> dict:
    """Every class our model files may name, for `keras.saving.load_model`."""
    return {
        "InstanceNormalization": InstanceNormalization,
        "AdaIN": AdaIN,
        "AdaptiveAttention": AdaptiveAttention,
        "TFOpLayer": TFOpLayer,
    }

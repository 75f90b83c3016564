"""Run under TensorFlow 2.15 / Keras 2 / tensorflow-addons (the original's stack): load .h5 files written by
facedancer.legacy the way the original code does, and print each model's outputs on saved inputs.

    python load_in_keras2.py CASE.h5 INPUTS.npz OUT.npz [CASE.h5 INPUTS.npz OUT.npz ...]
"""

import sys

import numpy as np
import tensorflow as tf
import tensorflow_addons as tfa
from tensorflow.keras.layers import Dense, Layer


class AdaIN(Layer):
    """The original's layer as its files record it: two Dense layers named dense and dense_1."""

    def build(self, input_shape):
        channels = input_shape[0][-1]
        self.dense = Dense(channels)
        self.dense_1 = Dense(channels)

    def call(self, inputs):
        x, z = inputs
        return self.dense(z)[:, None, None, :] * x + self.dense_1(z)[:, None, None, :]


class AdaptiveAttention(Layer):
    def call(self, inputs):
        mask, x_t, x_s = inputs
        return (1 - mask) * x_t + mask * x_s


CUSTOM = {
    "AdaIN": AdaIN,
    "AdaptiveAttention": AdaptiveAttention,
    "InstanceNormalization": tfa.layers.InstanceNormalization,
}

args = sys.argv[1:]
for model_path, inputs_path, out_path in zip(args[0::3], args[1::3], args[2::3], strict=True):
    model = tf.keras.models.load_model(model_path, custom_objects=CUSTOM, compile=False)
    data = np.load(inputs_path)
    inputs = [data["x"], data["z"]] if "z" in data.files else data["x"]  # a generator, or a discriminator
    np.savez(out_path, y=model(inputs).numpy())
import keras  # noqa: E402  (Keras 2 under TF 2.15)

print("keras", keras.__version__)

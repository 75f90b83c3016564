"""Rewrite a trained functional model into a cheaper graph that computes the same function.

Swapping runs the generator on every face of every frame, so inference cost is the product. Three
linear-algebra identities of the FaceDancer blocks and one fused kernel (valid for any weights, so legacy
files of any decoder config benefit) remove about a third of the work without changing the output beyond
float round-off:

- 3×3 conv ("same", stride 1) followed by 2×2 average pooling is one 4×4 conv with stride 2 whose kernel is
  the 3×3 kernel averaged over the four pool offsets: 2.25× fewer multiply-adds, no pooling pass.
- 1×1 conv followed by 2×2 average pooling equals pooling first, then the 1×1 conv: 4× fewer multiply-adds.
- The sum of two equal upsamplings is the upsampling of the sum: one resize at the low resolution instead
  of two resizes and an add at the high one.
- Instance norm (+ the AdaIN modulation and LeakyReLU after it) is written, in float32 with its scale and
  offset as constants, in the form TensorFlow's oneDNN graph rewriter fuses into one kernel
  (`_MklFusedInstanceNorm`) instead of a chain of ten element-wise passes over the feature map. (A norm
  whose scale and offset are still exactly 1 and 0, as initialised, is simplified by TensorFlow first and
  stays unfused: same result, a little slower.)

The rewritten model shares its untouched layers (and their weights) with the original; use it for
inference only.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import keras
import numpy as np
from keras import layers

from facedancer.nn.layers import AdaIN, InstanceNormalization

log = logging.getLogger(__name__)


class FusedInstanceNorm(layers.Layer):
    """Inference only: instance norm, then optionally AdaIN(z) and LeakyReLU, computed in float32.

    Scale and offset are constants (not variables) so that TensorFlow's oneDNN remapper recognises the
    moments + batch-norm pattern and fuses it (with the activation, when nothing sits in between).
    """

    def __init__(self, scale, offset, epsilon: float, slope: float | None = None, modulation=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = np.asarray(scale, np.float32)
        self.offset = np.asarray(offset, np.float32)
        self.epsilon = float(epsilon)
        self.slope = slope
        self.modulation = modulation

    def call(self, inputs):
        import tensorflow as tf

        x, z = inputs if self.modulation is not None else (inputs, None)
        x = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        y = tf.nn.batch_normalization(
            x, mean, variance, tf.constant(self.offset), tf.constant(self.scale), self.epsilon
        )
        if z is not None:
            gamma = tf.cast(self.modulation.gamma_dense(z), tf.float32)[:, None, None, :]
            beta = tf.cast(self.modulation.beta_dense(z), tf.float32)[:, None, None, :]
            y = gamma * y + beta
        if self.slope is not None:
            y = tf.nn.leaky_relu(y, self.slope)
        return tf.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0] if self.modulation is not None else input_shape


def _conv_kernel(op, size: int) -> bool:
    """A plain linear Conv2D of this square kernel size, stride 1, "same", channels-last."""
    if type(op) is not layers.Conv2D:
        return False
    config = op.get_config()
    return (
        tuple(config["kernel_size"]) == (size, size)
        and tuple(config["strides"]) == (1, 1)
        and tuple(config["dilation_rate"]) == (1, 1)
        and config.get("groups", 1) == 1
        and (config["padding"] == "same" or size == 1)
        and config["activation"] == "linear"
        and config["data_format"] == "channels_last"
    )


def _halving_pool(op) -> bool:
    if type(op) is not layers.AveragePooling2D:
        return False
    config = op.get_config()
    return (
        tuple(config["pool_size"]) == (2, 2)
        and tuple(config["strides"]) == (2, 2)
        and config["padding"] == "valid"
        and config["data_format"] == "channels_last"
    )


def _upsampling_key(op) -> tuple | None:
    if type(op) is not layers.UpSampling2D:
        return None
    config = op.get_config()
    if config["data_format"] != "channels_last":
        return None
    return tuple(config["size"]), config["interpolation"]


def _instance_norm(node) -> bool:
    """One group per channel, normalising over height and width of a channels-last image tensor."""
    op = node.operation
    if type(op) is not InstanceNormalization or op.axis not in (-1, 3) or len(node.input_tensors) != 1:
        return False
    shape = node.input_tensors[0].shape
    return len(shape) == 4 and op.groups in (-1, shape[-1])


def _leaky_slope(op) -> float | None:
    if type(op) is not layers.LeakyReLU:
        return None
    return float(op.get_config()["negative_slope"])


def _even_spatial(tensor) -> bool:
    height, width = tensor.shape[1], tensor.shape[2]
    return height is not None and width is not None and height % 2 == 0 and width % 2 == 0


def pooled_kernel(kernel: np.ndarray) -> np.ndarray:
    """The 4×4 stride-2 kernel equal to a 3×3 "same" conv followed by 2×2 average pooling."""
    out = np.zeros((4, 4, *kernel.shape[2:]), kernel.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            out[dy : dy + 3, dx : dx + 3] += kernel / 4.0
    return out


def _strided_conv(conv: layers.Conv2D, input_shape) -> layers.Conv2D:
    config = conv.get_config()
    layer = layers.Conv2D(
        config["filters"],
        4,
        strides=2,
        padding="same",
        use_bias=config["use_bias"],
        dtype=conv.dtype_policy,
        name=f"{conv.name}_pooled",
    )
    layer.build(input_shape)
    weights = conv.get_weights()
    layer.set_weights([pooled_kernel(weights[0]), *weights[1:]])
    return layer


def _graph_nodes(model: keras.Model) -> list:
    """The model's call nodes in an order where every node comes after the nodes it reads from."""
    by_depth = model._nodes_by_depth
    return [
        node
        for depth in sorted(by_depth, reverse=True)
        for node in by_depth[depth]
        if node.operation is not None and not node.is_input
    ]


def _plan(model: keras.Model, nodes: list) -> dict:
    """id(node) -> rewrite for that node: "skip" (pass its input through), "defer" (computed by a later node),
    a replacement tag, or a tuple of a tag and what the replacement needs."""
    producer = {id(t): node for node in nodes for t in node.outputs}
    readers = defaultdict(list)
    for node in nodes:
        for tensor in node.input_tensors:
            readers[id(tensor)].append(node)
    model_outputs = {id(t) for t in model.outputs}

    def only_reader(node):
        if len(node.outputs) != 1 or id(node.outputs[0]) in model_outputs:
            return None
        found = readers[id(node.outputs[0])]
        return found[0] if len(found) == 1 else None

    plan: dict[int, str | tuple] = {}
    for node in nodes:
        op = node.operation
        if _instance_norm(node):
            chain, modulation, slope = [node], None, None
            after = only_reader(node)
            if after is not None and type(after.operation) is AdaIN and after.input_tensors[0] is node.outputs[0]:
                chain.append(after)
                modulation = after
                after = only_reader(after)
            if after is not None and _leaky_slope(after.operation) is not None:
                chain.append(after)
                slope = _leaky_slope(after.operation)
            for deferred in chain[:-1]:
                plan[id(deferred)] = "defer"
            plan[id(chain[-1])] = ("fused_norm", node, modulation, slope)
        elif _halving_pool(op) and len(node.input_tensors) == 1:
            source = producer.get(id(node.input_tensors[0]))
            if source is None or only_reader(source) is not node or id(source) in plan:
                continue
            if _conv_kernel(source.operation, 3) and _even_spatial(source.input_tensors[0]):
                plan[id(source)], plan[id(node)] = "conv3_pool", "skip"
            elif _conv_kernel(source.operation, 1):
                plan[id(source)], plan[id(node)] = "pool_conv1", "skip"
        elif type(op) is layers.Add and len(node.input_tensors) >= 2:
            sources = [producer.get(id(t)) for t in node.input_tensors]
            if any(s is None or id(s) in plan or only_reader(s) is not node for s in sources):
                continue
            keys = {_upsampling_key(s.operation) for s in sources}
            if len(keys) == 1 and None not in keys and len({id(s) for s in sources}) == len(sources):
                plan[id(node)] = ("add_upsample", sources[0].operation)
                for source in sources:
                    plan[id(source)] = "skip"
    return plan


def _fused_norm(tensors: dict, norm_node, modulation_node, slope):
    norm = norm_node.operation
    weights = {w.path.split("/")[-1]: keras.ops.convert_to_numpy(w) for w in norm.weights}
    channels = int(norm_node.input_tensors[0].shape[-1])
    layer = FusedInstanceNorm(
        weights.get("gamma", np.ones(channels, np.float32)),
        weights.get("beta", np.zeros(channels, np.float32)),
        norm.epsilon,
        slope,
        modulation_node.operation if modulation_node is not None else None,
        dtype=norm.dtype_policy,
        name=f"{norm.name}_fused",
    )
    x = tensors[id(norm_node.input_tensors[0])]
    if modulation_node is None:
        return layer(x)
    return layer([x, tensors[id(modulation_node.input_tensors[1])]])


def optimize_for_inference(model: keras.Model) -> keras.Model:
    """The same function as `model` (a functional model) with the rewrites above applied where they hold."""
    nodes = _graph_nodes(model)
    plan = _plan(model, nodes)
    if not plan:
        return model
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in model.inputs]
    tensors = {id(old): new for old, new in zip(model.inputs, inputs, strict=True)}
    for node in nodes:
        op, action = node.operation, plan.get(id(node))
        if action == "defer":  # computed by the last node of its fused chain
            continue
        if isinstance(action, tuple) and action[0] == "fused_norm":  # (tag, norm, AdaIN or None, slope or None)
            outputs = _fused_norm(tensors, *action[1:])
        else:
            args, kwargs = node.arguments.fill_in(tensors)
            if action is None:
                outputs = op(*args, **kwargs)
            elif action == "skip":
                outputs = args[0]
            elif action == "conv3_pool":
                outputs = _strided_conv(op, args[0].shape)(args[0])
            elif action == "pool_conv1":
                pooled = layers.AveragePooling2D(2, dtype=op.dtype_policy, name=f"{op.name}_prepool")(args[0])
                outputs = op(pooled)
            else:  # ("add_upsample", upsampling): every input was this kind of upsampling, now skipped
                upsampling = action[1]
                config = {**upsampling.get_config(), "name": f"{op.name}_upsampled", "dtype": op.dtype_policy}
                outputs = layers.UpSampling2D.from_config(config)(op(*args, **kwargs))
        flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for old, new in zip(node.outputs, flat, strict=True):
            tensors[id(old)] = new
    outputs = [tensors[id(t)] for t in model.outputs]
    return keras.Model(
        keras.tree.pack_sequence_as(model.input, inputs),
        keras.tree.pack_sequence_as(model.output, outputs),
        name=f"{model.name}_inference",
    )


def agreement_db(a: np.ndarray, b: np.ndarray, peak: float = 2.0) -> float:
    """PSNR of b against a (outputs in [-1, 1]: peak-to-peak 2); inf when equal."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def optimize_checked(model: keras.Model, min_db: float, seed: int = 0) -> keras.Model:
    """`optimize_for_inference`, verified on one random input against the stored graph before it is used.

    A model the rewrites get wrong (a layout no test has seen) is run as stored, with a warning, instead
    of producing wrong faces: agreement below `min_db` PSNR, or any error while rewriting, falls back.
    """
    try:
        fast = optimize_for_inference(model)
        if fast is model:
            return model
        rng = np.random.default_rng(seed)
        inputs = [rng.uniform(-1, 1, (1, *t.shape[1:])).astype(np.float32) for t in model.inputs]
        inputs = keras.tree.pack_sequence_as(model.input, inputs)
        expected = keras.ops.convert_to_numpy(keras.ops.cast(model(inputs, training=False), "float32"))
        got = keras.ops.convert_to_numpy(keras.ops.cast(fast(inputs, training=False), "float32"))
        db = agreement_db(expected, got)
    except Exception as exc:  # noqa: BLE001 - any failure here must not stop a swap
        log.warning("could not rewrite %s for inference (%s); running it as stored", model.name, exc)
        return model
    if not db >= min_db:
        log.warning(
            "the inference rewrite of %s agrees with it to only %.1f dB (< %.0f); running it as stored",
            model.name,
            db,
            min_db,
        )
        return model
    log.debug("inference rewrite of %s: %.1f dB agreement", model.name, db)
    return fast

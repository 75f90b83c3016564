"""Choosing a tf.distribute strategy: one device, several local GPUs, several machines (TF_CONFIG)."""

from __future__ import annotations

import json
import logging
import os

from facedancer.errors import FaceDancerError

log = logging.getLogger(__name__)
STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def split_cpu(replicas: int) -> None:
    """Expose the CPU as `replicas` logical devices (for testing data parallelism without GPUs).

    Must run before TensorFlow initialises its devices.
    """
    import tensorflow as tf

    if replicas <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as exc:
        raise FaceDancerError(f"cannot split the CPU into {replicas} devices after TensorFlow started: {exc}") from exc


def make_strategy(kind: str = "auto", cpu_replicas: int = 1):
    """auto: MultiWorkerMirrored when TF_CONFIG names a cluster, Mirrored over several GPUs (or logical CPUs),
    else the default single-device strategy."""
    import tensorflow as tf

    if kind not in STRATEGIES:
        raise FaceDancerError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    split_cpu(cpu_replicas)
    tf_config = os.environ.get("TF_CONFIG")
    if kind == "multiworker" or (kind == "auto" and tf_config and json.loads(tf_config).get("cluster")):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if kind == "mirrored" or (kind == "auto" and (len(gpus) > 1 or cpu_replicas > 1)):
        devices = [d.name for d in gpus] if gpus else [d.name for d in cpus[: max(cpu_replicas, 1)]]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def is_multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """True on the one worker that writes logs, checkpoints and exports (the only one when not multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None or not resolver.task_type:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id or 0) == 0

"""Networks: layers, generator, discriminator."""

from facedancer.nn.discriminator import build_discriminator
from facedancer.nn.generator import FUSION_TYPES, GeneratorConfig, build_generator, preset
from facedancer.nn.layers import AdaIN, AdaptiveAttention, InstanceNormalization, custom_objects

__all__ = [
    "AdaIN",
    "AdaptiveAttention",
    "FUSION_TYPES",
    "GeneratorConfig",
    "InstanceNormalization",
    "build_discriminator",
    "build_generator",
    "custom_objects",
    "preset",
]

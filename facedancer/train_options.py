"""Training options: every flag of `facedancer train`, saved as options.json in each run folder.

Kept free of TensorFlow imports so the command line parses instantly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from facedancer.ifsr import IFSR_BLOCKS
from facedancer.perceptual import DEFAULT_BLOCKS as VGG_BLOCKS


@dataclass
class TrainOptions:
    data_dir: str = ""
    eval_dir: str | None = None
    arcface_path: str = "arcface_model/ArcFace-Res50.h5"
    batch_size: int = 10
    image_size: int = 256
    lr: float = 1e-4
    lr_decay: float = 0.97
    lr_decay_steps: int = 100_000
    r_lambda: float = 5.0
    p_lambda: float = 0.2
    i_lambda: float = 10.0
    c_lambda: float = 1.0
    ifsr_lambda: float = 1.0
    ifsr_scale: float = 1.2
    ifsr_margin: list[float] | None = None
    ifsr_margins_file: str | None = None
    ifsr_blocks: list[str] = field(default_factory=lambda: list(IFSR_BLOCKS))
    p_blocks: list[str] = field(default_factory=lambda: list(VGG_BLOCKS))
    perceptual_weights: str | None = None
    r1_gamma: float = 10.0
    d_channels: list[int] | None = None  # None: the original's widths (see build_discriminator)
    reconstruction_clip: float = 5.0
    config: str | None = None
    mapping_depth: int = 4
    mapping_size: int = 512
    up_types: list[str] = field(default_factory=lambda: ["no_skip", "no_skip", "affa", "affa", "affa", "concat"])
    same_ratio: float = 0.2
    same_identity_ratio: float = 0.0
    shuffle_buffer: int = 1000
    log_dir: str = "runs"
    log_name: str = "facedancer"
    chkp_dir: str | None = None
    keep_checkpoints: int = 5
    max_steps: int = 1_000_000
    seed: int = 0
    init_from: str | None = None
    init_discriminator_from: str | None = None
    # Opt-in deviations from the original (README: "Parity with the original"); the defaults reproduce it.
    normalize_identity: bool = False
    antialias_identity_resize: bool = False
    ifsr_per_sample: bool = False
    perceptual_caffe_input: bool = False
    per_sample_augment: bool = False
    mixed_precision: bool = False
    jit: bool = False
    log_every: int = 10
    image_every: int = 500
    ckpt_every: int = 1000
    eval_every: int = 1000
    eval_batches: int = 4
    export: bool = False
    export_legacy: bool = False
    strategy: str = "auto"
    cpu_replicas: int = 1

    def generator_config(self):
        """The GeneratorConfig these options describe (a --config preset wins over the single flags)."""
        from facedancer.nn.generator import GeneratorConfig, preset

        base = (
            preset(self.config)
            if self.config
            else GeneratorConfig(
                up_types=tuple(self.up_types), mapping_depth=self.mapping_depth, mapping_size=self.mapping_size
            )
        )
        return GeneratorConfig(
            up_types=base.up_types,
            mapping_depth=base.mapping_depth,
            mapping_size=base.mapping_size,
            image_size=self.image_size,
        )

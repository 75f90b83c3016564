"""`facedancer train` (also train/train.py): train FaceDancer with TensorBoard logs and checkpoints."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import signal
from pathlib import Path

from facedancer.cli import types
from facedancer.cli.common import add_device_flag
from facedancer.errors import FaceDancerError

log = logging.getLogger("facedancer.train")


def comma_list(kind=str):
    def parse(text: str) -> list:
        try:
            return [kind(item.strip()) for item in text.split(",") if item.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}: {text}") from exc

    return parse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train FaceDancer (TensorBoard logs, checkpoints, resume, export)",
        description="Train the FaceDancer generator and discriminator on TFRecord shards. Each run gets a "
        "folder LOG_DIR/NNNNN-LOG_NAME holding options.json, TensorBoard logs (logs/), checkpoints and exports.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from facedancer.train_options import TrainOptions

    d = TrainOptions()
    g = p.add_argument_group("data")
    g.add_argument(
        "--data_dir",
        required=True,
        help="training shard glob(s), comma-separated, e.g. 'shards/faces_train_*-of-*.records'",
    )
    g.add_argument("--eval_dir", help="validation shard glob(s) for the Val/ metrics and image grids")
    g.add_argument(
        "--batch_size", type=types.POSITIVE_INT, default=d.batch_size, help=f"global batch size ({d.batch_size})"
    )
    g.add_argument(
        "--image_size", type=types.image_size, default=d.image_size, help=f"training resolution ({d.image_size})"
    )
    g.add_argument(
        "--same_ratio",
        type=types.FRACTION,
        default=d.same_ratio,
        help=f"share of self pairs (source = target), at least one per batch ({d.same_ratio})",
    )
    g.add_argument(
        "--same_identity_ratio",
        type=types.FRACTION,
        default=d.same_identity_ratio,
        help="share of pairs of two images of one identity, from the shard labels (0)",
    )
    g.add_argument(
        "--shuffle_buffer", type=types.POSITIVE_INT, default=d.shuffle_buffer, help="shuffle buffer in records"
    )

    g = p.add_argument_group("models")
    g.add_argument(
        "--arcface_path",
        default=d.arcface_path,
        help=f"identity encoder (ArcFace-Res50.h5; see arcface_model/README.md) ({d.arcface_path})",
    )
    g.add_argument(
        "--config", type=types.generator_preset, help="generator preset (C); overrides --up_types/--mapping_*"
    )
    g.add_argument(
        "--up_types",
        type=types.fusion_types,
        default=d.up_types,
        help="decoder fusion types, 6 comma-separated: no_skip, concat, add, affa, d_affa, do_affa",
    )
    g.add_argument(
        "--mapping_depth", type=types.NON_NEGATIVE_INT, default=d.mapping_depth, help="identity mapping layers (4)"
    )
    g.add_argument(
        "--mapping_size", type=types.POSITIVE_INT, default=d.mapping_size, help="identity mapping width (512)"
    )
    g.add_argument(
        "--init_from",
        help="start G from a generator file load_model reads (.keras, the original's .h5, gen.json), or continue "
        "the original's training from its checkpoint folder (CHKP_DIR/LOG_NAME with gen/gen.json and the "
        "newest gen_N.h5; D then comes from the matching dis/dis_N.h5)",
    )
    g.add_argument(
        "--init_discriminator_from",
        help="start D from a discriminator file load_model reads (the original's .h5, dis.json, .keras); "
        "wins over the dis/ of an --init_from folder",
    )
    g.add_argument(
        "--perceptual_weights", help="Keras VGG16 notop ImageNet .h5 for the perceptual loss (default: Keras' cache)"
    )

    g = p.add_argument_group("losses and optimisation")
    g.add_argument("--lr", type=types.POSITIVE, default=d.lr, help=f"Adam learning rate ({d.lr})")
    g.add_argument(
        "--lr_decay",
        type=types.float_in(0.0, 1.0, low_open=True),
        default=d.lr_decay,
        help=f"exponential decay factor per --lr_decay_steps ({d.lr_decay})",
    )
    g.add_argument("--lr_decay_steps", type=types.POSITIVE_INT, default=d.lr_decay_steps, help=f"({d.lr_decay_steps})")
    g.add_argument(
        "--r_lambda", type=types.NON_NEGATIVE, default=d.r_lambda, help=f"reconstruction weight ({d.r_lambda})"
    )
    g.add_argument(
        "--p_lambda", type=types.NON_NEGATIVE, default=d.p_lambda, help=f"perceptual weight; 0: no VGG ({d.p_lambda})"
    )
    g.add_argument("--i_lambda", type=types.NON_NEGATIVE, default=d.i_lambda, help=f"identity weight ({d.i_lambda})")
    g.add_argument("--c_lambda", type=types.NON_NEGATIVE, default=d.c_lambda, help=f"cycle weight ({d.c_lambda})")
    g.add_argument(
        "--ifsr_lambda", type=types.NON_NEGATIVE, default=d.ifsr_lambda, help=f"IFSR weight; 0: off ({d.ifsr_lambda})"
    )
    g.add_argument(
        "--ifsr_scale", type=types.NON_NEGATIVE, default=d.ifsr_scale, help=f"margin multiplier ({d.ifsr_scale})"
    )
    g.add_argument(
        "--ifsr_margin",
        type=comma_list(float),
        help="IFSR margins, comma-separated, one per --ifsr_blocks (default: the published ones)",
    )
    g.add_argument("--ifsr_margins_file", help="IFSR margins JSON (from `facedancer ifsr-margins`)")
    g.add_argument(
        "--ifsr_blocks",
        type=comma_list(),
        default=d.ifsr_blocks,
        help="identity-encoder blocks IFSR compares (default: the 11 published ResNet50 blocks)",
    )
    g.add_argument("--p_blocks", type=comma_list(), default=d.p_blocks, help="VGG16 blocks of the perceptual loss")
    g.add_argument(
        "--d_channels",
        type=comma_list(int),
        default=None,
        help="discriminator block widths, one per block (log2(image_size) - 2), e.g. 128,256,512,512 at 64²; "
        "default: the original's widths per resolution (a deviation when set)",
    )
    g.add_argument(
        "--r1_gamma", type=types.NON_NEGATIVE, default=d.r1_gamma, help=f"R1 gamma; weight is gamma/2 ({d.r1_gamma})"
    )

    g = p.add_argument_group(
        "deviations from the original",
        "off by default (the defaults reproduce the original FaceDancer); see the README's parity table",
    )
    g.add_argument(
        "--normalize_identity",
        action="store_true",
        help="feed G unit-length ArcFace embeddings (the original feeds the raw ones); swap such a generator "
        "with `swap --normalize_identity`",
    )
    g.add_argument(
        "--antialias_identity_resize",
        action="store_true",
        help="antialias the 256->112 resize into ArcFace (the original: plain bilinear); not with --jit",
    )
    g.add_argument(
        "--ifsr_per_sample",
        action="store_true",
        help="IFSR relu per sample before the batch mean (the original: relu of the batch mean per block)",
    )
    g.add_argument(
        "--perceptual_caffe_input",
        action="store_true",
        help="give VGG16 its ImageNet (Caffe BGR 0..255) input (the original: the [-1, 1] images as they are)",
    )
    g.add_argument(
        "--per_sample_augment",
        action="store_true",
        help="independent colour-jitter factors per sample and operation (the original: one draw per batch)",
    )

    g = p.add_argument_group("run")
    g.add_argument("--log_dir", default=d.log_dir, help=f"parent of the run folders ({d.log_dir})")
    g.add_argument("--log_name", default=d.log_name, help=f"run name ({d.log_name})")
    g.add_argument("--chkp_dir", help="checkpoint folder (default: RUN/checkpoints)")
    g.add_argument(
        "--keep_checkpoints", type=types.POSITIVE_INT, default=d.keep_checkpoints, help="checkpoints kept (5)"
    )
    g.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_DIR",
        help="continue the latest run named --log_name (or RUN_DIR) from its last checkpoint",
    )
    g.add_argument(
        "--load", type=types.NON_NEGATIVE_INT, metavar="STEP", help="with --resume: restore the checkpoint at STEP"
    )
    g.add_argument(
        "--max_steps", type=types.POSITIVE_INT, default=d.max_steps, help=f"stop at this global step ({d.max_steps})"
    )
    g.add_argument("--seed", type=int, default=d.seed, help="seed of weights, data order and augmentation (0)")
    g.add_argument(
        "--log_every", type=types.POSITIVE_INT, default=d.log_every, help="steps between scalar summaries (10)"
    )
    g.add_argument(
        "--image_every", type=types.POSITIVE_INT, default=d.image_every, help="steps between image grids (500)"
    )
    g.add_argument(
        "--ckpt_every", type=types.POSITIVE_INT, default=d.ckpt_every, help="steps between checkpoints (1000)"
    )
    g.add_argument(
        "--eval_every", type=types.POSITIVE_INT, default=d.eval_every, help="steps between validations (1000)"
    )
    g.add_argument("--eval_batches", type=types.POSITIVE_INT, default=d.eval_batches, help="validation batches (4)")
    g.add_argument(
        "--export", action="store_true", help="write the generator as RUN/export/generator_STEP.keras at the end"
    )
    g.add_argument("--export_legacy", action="store_true", help="also write the original's .h5 format")
    g.add_argument(
        "--mixed_precision", action="store_true", help="compute in float16 (GPU, with loss scaling) or bfloat16 (CPU)"
    )
    g.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    g.add_argument(
        "--strategy",
        default=d.strategy,
        choices=("auto", "default", "mirrored", "multiworker"),
        help="auto: several machines from TF_CONFIG, several local GPUs, else one device",
    )
    g.add_argument(
        "--cpu_replicas",
        type=types.POSITIVE_INT,
        default=d.cpu_replicas,
        help="split the CPU into N logical devices for data parallelism (testing without GPUs)",
    )
    add_device_flag(p)


def options_from_args(args: argparse.Namespace):
    from facedancer.train_options import TrainOptions

    names = {f.name for f in dataclasses.fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in vars(args).items() if k in names})


def run(args: argparse.Namespace) -> int:
    from facedancer.distribute import is_multi_worker, make_strategy
    from facedancer.paths import check_output_folder
    from facedancer.training import has_checkpoint, latest_run_dir, new_run_dir, write_json_atomic

    options = options_from_args(args)
    if args.load is not None and not args.resume:
        raise FaceDancerError("--load STEP restores a checkpoint of an earlier run: use it with --resume")
    strategy = make_strategy(options.strategy, options.cpu_replicas)  # before anything initialises devices
    if is_multi_worker(strategy):
        return run_multi_worker(args, options, strategy)
    if args.resume:
        run_dir = latest_run_dir(options.log_dir, options.log_name) if args.resume == "latest" else Path(args.resume)
        if not (run_dir / "options.json").exists():
            raise FaceDancerError(f"{run_dir} is not a training run folder (no options.json); check --resume")
        saved = json.loads((run_dir / "options.json").read_text())
        options = resumed_options(saved, options, getattr(args, "explicit", None))
        check_inputs(options)
        created = False
    else:
        check_inputs(options)
        check_output_folder(options.log_dir, "--log_dir")
        run_dir = new_run_dir(options.log_dir, options.log_name)
        created = True
    try:
        write_json_atomic(run_dir / "options.json", dataclasses.asdict(options))
        log.info("run folder %s; watch it with: tensorboard --logdir %s", run_dir, run_dir / "logs")
        return train_in(run_dir, args, options, strategy)
    except BaseException:
        if created and not has_checkpoint(run_dir):  # a failed start leaves no run folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
            log.info("removed %s: the run failed before its first checkpoint", run_dir)
        raise


# Options that decide the checkpoint's shapes: a resumed run keeps its own.
ARCHITECTURE = ("image_size", "config", "up_types", "mapping_depth", "mapping_size")
# Without the set of typed flags (library callers), only these follow the command line on --resume.
SCHEDULE = ("max_steps", "export", "export_legacy", "log_every", "image_every", "ckpt_every", "eval_every")


def resumed_options(saved: dict, given, explicit: set[str] | None):
    """The saved run's options, with every flag typed on this command line overriding (and logged).

    Architecture flags that differ from the run's are refused: the checkpoint holds the other shapes.
    """
    from facedancer.train_options import TrainOptions

    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    current = dataclasses.asdict(given)
    typed = (explicit & fields) if explicit is not None else set(SCHEDULE)
    merged = {k: v for k, v in saved.items() if k in fields}
    for name in sorted(typed):
        old, new = saved.get(name), current[name]
        if old == new:
            continue
        if name in ARCHITECTURE and explicit is not None:
            raise FaceDancerError(
                f"--{name} {new} differs from the resumed run's {old}: its checkpoint has that architecture; "
                f"drop --{name} or start a new run without --resume"
            )
        if explicit is not None:
            log.info("resume: --%s %s overrides the run's saved %s", name, new, old)
        merged[name] = new
    return TrainOptions(**merged)


def check_inputs(options) -> None:
    """Input files named by the options exist (checked before any model is built)."""
    from facedancer.data import resolve_shards

    for flag, path in (
        ("--arcface_path", options.arcface_path),
        ("--init_from", options.init_from),
        ("--perceptual_weights", options.perceptual_weights),
        ("--ifsr_margins_file", options.ifsr_margins_file),
    ):
        if path and not Path(path).exists():
            raise FaceDancerError(f"{flag} {path} not found; check the path")
    resolve_shards(options.data_dir)
    if options.eval_dir:
        resolve_shards(options.eval_dir)


def run_multi_worker(args: argparse.Namespace, options, strategy) -> int:
    """Every worker runs the same command; the chief writes LOG_DIR/LOG_NAME (a fixed name all workers agree
    on), the others write to a private temporary folder and restore from the chief's checkpoints."""
    import tempfile

    from facedancer.distribute import is_chief
    from facedancer.training import write_json_atomic

    shared = Path(options.log_dir) / options.log_name
    chief_checkpoints = Path(options.chkp_dir) if options.chkp_dir else shared / "checkpoints"
    if is_chief(strategy):
        shared.mkdir(parents=True, exist_ok=True)
        run_dir = shared
        write_json_atomic(run_dir / "options.json", dataclasses.asdict(options))
        log.info("chief worker; run folder %s; watch it with: tensorboard --logdir %s", run_dir, run_dir / "logs")
    else:
        run_dir = Path(tempfile.mkdtemp(prefix="facedancer-worker-"))
    return train_in(run_dir, args, options, strategy, restore_dir=chief_checkpoints)


def train_in(run_dir: Path, args: argparse.Namespace, options, strategy, restore_dir: Path | None = None) -> int:
    """Build the trainer in run_dir, restore on --resume, train, export, and map a stop signal to the exit code."""
    import tensorflow as tf

    from facedancer.data import PipelineOptions, make_dataset
    from facedancer.training import Trainer

    tf.keras.utils.set_random_seed(options.seed)
    trainer = Trainer(options, run_dir, strategy, restore_dir=restore_dir)
    step = trainer.restore(args.load) if args.resume else 0
    if args.resume and step == 0:
        log.warning("no checkpoint in %s: starting from step 0", trainer.restore_dir)
    data_seed = int(trainer.rng.uniform_full_int([], dtype=tf.int64).numpy() % (2**31))
    pipeline = PipelineOptions(
        batch_size=options.batch_size,
        image_size=options.image_size,
        same_ratio=options.same_ratio,
        same_identity_ratio=options.same_identity_ratio,
        shuffle_buffer=options.shuffle_buffer,
        per_sample_augment=options.per_sample_augment,
        seed=data_seed,
    )
    dataset = make_dataset(options.data_dir, pipeline)
    eval_dataset = None
    if options.eval_dir:
        eval_dataset = make_dataset(
            options.eval_dir, dataclasses.replace(pipeline, repeat=False, augment=False, seed=options.seed)
        )
    trainer.fit(dataset, eval_dataset)
    if options.export or options.export_legacy:
        trainer.export(legacy=options.export_legacy)
    if trainer.stopped_by_signal is not None:
        log.warning(
            "stopped by %s at step %d; resume with --resume %s",
            signal.Signals(trainer.stopped_by_signal).name,
            int(trainer.step.numpy()),
            run_dir,
        )
        return 128 + trainer.stopped_by_signal
    return 0

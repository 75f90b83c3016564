"""`facedancer demo`: the whole pipeline on real sample photos, on a fresh machine without weights.

photos (PyPI packages) ► align ► shards ► short training (TensorBoard) ► export ► swap a generated video with
sound ► evaluate ► report.html. A few CPU steps cannot make a good face swapper: the demo shows that every
stage runs and where each artefact is, and the report gives the command to swap with real weights.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ARCFACE_DEFAULT = Path("arcface_model/ArcFace-Res50.h5")


# Chosen so the whole demo stays under 5 minutes on a 2-core AVX2 CPU without AVX-512 (README "Demo").
DEFAULT_TRAIN_MINUTES = 2.5
BUDGET_STEP_CAP = 100_000  # with a time budget the step count is open; this only bounds the run


@dataclass(frozen=True)
class DemoOptions:
    output: str = "demo_output"
    train_minutes: float = DEFAULT_TRAIN_MINUTES
    steps: int | None = None  # an exact step count (reproducible runs); replaces the time budget
    image_size: int = 64
    batch_size: int = 4
    frames: int = 36
    seed: int = 0
    arcface_path: str | None = None
    progress: bool = True

    def __post_init__(self):
        from facedancer.errors import FaceDancerError

        if self.steps is not None and self.steps < 1:
            raise FaceDancerError(f"--steps must be at least 1, got {self.steps}")
        if self.steps is None and not self.train_minutes > 0:
            raise FaceDancerError(f"--train_minutes must be above 0, got {self.train_minutes}")
        if self.frames < 2:
            raise FaceDancerError(f"--frames must be at least 2, got {self.frames}")

    @classmethod
    def quick(cls, output: str, progress: bool = True) -> DemoOptions:
        """The reduced mode the test suite runs: every stage, minimal work; training on a 3-second budget (the
        first step, which traces the graph, always runs) so the budget path is the one tested."""
        return cls(output=output, train_minutes=0.05, frames=8, batch_size=2, progress=progress)


def demo_train_options(
    pattern: str, arcface: str, log_dir: Path, image_size: int, batch_size: int, steps: int | None, seed: int
):
    """The demo's TrainOptions: the original's loss defaults except perceptual (no VGG16 file on a fresh
    machine); a lighter discriminator (the widths the original's D has in its first blocks, where a plain
    small-size D keeps 512 channels from the input resolution on: 4.5x fewer D FLOPs at 64², and the R1 double
    backprop through D was most of a step); logs every few steps so the loss curves have points whatever the
    budget allows."""
    import math

    from facedancer.nn.discriminator import CHANNELS
    from facedancer.train_options import TrainOptions

    max_steps = steps or BUDGET_STEP_CAP
    every = max(1, steps // 20) if steps else 2
    return TrainOptions(
        data_dir=pattern,
        eval_dir=pattern,
        arcface_path=arcface,
        image_size=image_size,
        batch_size=batch_size,
        p_lambda=0.0,
        d_channels=list(CHANNELS[: int(math.log2(image_size)) - 2]),
        max_steps=max_steps,
        log_dir=str(log_dir),
        log_name="demo",
        log_every=every,
        image_every=max(1, steps // 2) if steps else 1000,
        eval_every=max_steps,
        ckpt_every=max_steps,
        eval_batches=1,
        seed=seed,
    )


def random_arcface_layout(seed: int = 0):
    """An identity encoder with ArcFace-Res50's layout (layers[1] a backbone whose blocks carry the ResNet50
    IFSR names), small and with random weights: what the demo uses when no ArcFace file is present."""
    import keras

    from facedancer.ifsr import IFSR_BLOCKS

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu", name="conv1_conv")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2_block3_out")(x)
    for i in range(1, 5):
        x = keras.layers.Conv2D(
            16, 3, strides=2 if i == 1 else 1, padding="same", activation="relu", name=f"conv3_block{i}_out"
        )(x)
    for i in range(1, 7):
        x = keras.layers.Conv2D(
            24, 3, strides=2 if i == 1 else 1, padding="same", activation="relu", name=f"conv4_block{i}_out"
        )(x)
    backbone = keras.Model(inputs, x, name="resnet50")
    outer = keras.Input((112, 112, 3))
    h = keras.layers.BatchNormalization()(backbone(outer))
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.BatchNormalization()(keras.layers.Dense(512)(h))
    model = keras.Model(outer, out, name="ArcFaceLayoutRandom")
    assert all(backbone.get_layer(b) for b in IFSR_BLOCKS)
    return model


def _raw_dataset(root: Path) -> dict[str, Path]:
    """raw/identity/photo from the sample photos; returns the photos the later stages use."""
    from facedancer.images import write_image
    from facedancer.samples import OBAMA, astronaut, photo_dir

    photos = photo_dir()
    for name in OBAMA:
        shutil.copy(photos / name, _mk(root / "obama") / name)
    shutil.copy(photos / "biden.jpg", _mk(root / "biden") / "biden.jpg")
    image = astronaut()
    if image is not None:
        write_image(_mk(root / "astronaut") / "astronaut.png", image)
    return {"target": photos / "obama.jpg", "source": photos / "biden.jpg"}


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_demo(options: DemoOptions) -> Path:
    """Run every stage into options.output, logging each stage's start and end; returns the path of report.html."""
    import tensorflow as tf

    from facedancer.align_dataset import AlignOptions, align_dataset
    from facedancer.data import PipelineOptions, make_dataset
    from facedancer.demo_report import DemoResults, frame_strip, loss_curves, write_report
    from facedancer.errors import FaceDancerError
    from facedancer.evaluation import Evaluator, evaluate_triples, video_triples, write_reports
    from facedancer.images import read_image, write_image
    from facedancer.legacy import save_legacy_h5
    from facedancer.models import load
    from facedancer.progress import cpu_time, stage
    from facedancer.samples import moving_face_frames, write_video
    from facedancer.shards import ShardOptions, write_shards
    from facedancer.swap import FaceSwapper, SwapOptions
    from facedancer.swap_video import VideoOptions, swap_video
    from facedancer.training import Trainer, new_run_dir, write_json_atomic

    out = _mk(Path(options.output))
    show = options.progress
    results = DemoResults(options=options, out=out)

    def finish(record, output: Path) -> None:
        results.stages.append((record.name, record.seconds, record.cpu_seconds, output))

    with stage("demo 1/7 photos: real sample photos into raw/IDENTITY/", log) as s:
        chosen = _raw_dataset(_mk(out / "raw"))
        results.chosen = chosen
    finish(s, out / "raw")
    with stage("demo 2/7 align: detect and align faces into aligned/", log) as s:
        summary = align_dataset(out / "raw", out / "aligned", AlignOptions(min_size=64), progress=show)
        results.align_counts = summary.counts()
        s.note = ", ".join(f"{k} {v}" for k, v in results.align_counts.items())
    finish(s, out / "aligned")
    with stage("demo 3/7 shard: aligned faces into TFRecord shards", log) as s:
        write_shards(
            out / "aligned",
            out / "shards",
            ShardOptions(data_name="demo", images_per_shard=4, seed=options.seed, overwrite=True),
            progress=show,
        )
        pattern = str(out / "shards" / "demo_train_*-of-*.records")
    finish(s, out / "shards")

    budget = None if options.steps else options.train_minutes * 60
    what = f"{options.steps} steps" if options.steps else f"{options.train_minutes:g} min"
    with stage(f"demo 4/7 train: {what} at {options.image_size}² (TensorBoard logs, checkpoint, export)", log) as s:
        arcface = Path(options.arcface_path) if options.arcface_path else ARCFACE_DEFAULT
        results.real_arcface = arcface.exists()
        if not results.real_arcface:
            arcface = out / "models" / "arcface_layout_random.h5"
            _mk(arcface.parent)
            save_legacy_h5(random_arcface_layout(options.seed), arcface)
        results.arcface = arcface
        tf.keras.utils.set_random_seed(options.seed)
        train_options = demo_train_options(
            pattern,
            str(arcface),
            out / "runs",
            options.image_size,
            options.batch_size,
            options.steps,
            options.seed,
        )
        run_dir = new_run_dir(train_options.log_dir, train_options.log_name)
        results.run_dir = run_dir
        write_json_atomic(run_dir / "options.json", asdict(train_options))
        trainer = Trainer(train_options, run_dir)
        pipeline = PipelineOptions(batch_size=options.batch_size, image_size=options.image_size, seed=options.seed)
        dataset = make_dataset(pattern, pipeline)
        eval_dataset = make_dataset(
            pattern,
            PipelineOptions(
                batch_size=options.batch_size,
                image_size=options.image_size,
                repeat=False,
                augment=False,
                seed=options.seed,
            ),
        )
        loop_start, loop_cpu = time.perf_counter(), cpu_time()
        results.losses = trainer.fit(dataset, eval_dataset, progress=show, seconds=budget)
        results.train_loop_seconds = time.perf_counter() - loop_start
        results.train_loop_cpu_seconds = cpu_time() - loop_cpu
        results.steps_done = int(trainer.step.numpy())
        results.exported = trainer.export()[0]
        batch = [t.numpy() for t in next(iter(dataset))][:2]
        write_image(out / "training_grid.png", (trainer.preview(*batch)[0] * 255).astype(np.uint8))
        s.note = f"{results.steps_done} step(s) in {results.train_loop_seconds:.1f} s"
    finish(s, run_dir)

    with stage("demo 5/7 swap: a generated video with sound, swapped with the trained generator", log) as s:
        target_video = write_video(out / "target.mp4", moving_face_frames(read_image(chosen["target"]), options.frames))
        swapper = FaceSwapper(
            load(results.exported, kind="generator").model,
            load(arcface, kind="identity").model,
            options=SwapOptions(min_face=32),
        )
        swapper.set_source(chosen["source"])
        swapped_video = out / "swapped.mp4"
        swap_video(swapper, target_video, swapped_video, VideoOptions(), progress=show)
        side = out / "side_by_side.mp4"
        swap_video(
            swapper,
            target_video,
            side,
            VideoOptions(compare=True, length=min(1.0, 4 / options.frames)),
            progress=show,
        )
        results.target_video, results.swapped_video = target_video, swapped_video
    finish(s, swapped_video)

    with stage("demo 6/7 evaluate: identity, pose and expression of the swapped frames", log) as s:
        try:
            evaluator = Evaluator(swapper.identity, judge=True, detector=swapper.detector)
            results.judge = True
        except FaceDancerError as exc:  # the judge is optional; the report says which judge ran
            log.warning("dlib judge unavailable (%s); evaluating with the demo's identity encoder only", exc)
            evaluator = Evaluator(swapper.identity, judge=False, detector=swapper.detector)
        triples = video_triples(chosen["source"], target_video, swapped_video, every=max(1, options.frames // 6))
        result = evaluate_triples(evaluator, triples, progress=show)
        results.summary = result["summary"]
        results.reports = write_reports(result, out / "evaluation")
    finish(s, out / "evaluation")

    with stage("demo 7/7 report: timings, loss curves, frame strip, charts into report.html", log) as s:
        results.loss_curves = loss_curves(run_dir / "logs" / "train", out / "loss_curves")
        results.frame_strip = frame_strip(target_video, swapped_video, out / "frame_strip.png")
        report = out / "report.html"
        results.stages.append(("demo 7/7 report: this page, loss curves, frame strip", None, None, report))
        write_report(results, report)
    return report

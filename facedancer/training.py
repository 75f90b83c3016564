"""FaceDancer GAN training: the compiled step, the loop, TensorBoard logging, checkpoints and export.

G and D are updated every step from one generator forward pass (Adam β=(0, 0.99), exponential decay),
the identity encoder is frozen. Checkpoints hold G, D, both optimizers, the step and the RNG state;
`resume` continues at the saved step with identical optimizer state. Nothing is swallowed: a
non-finite loss stops the run naming the loss and the step.
"""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import time
from pathlib import Path

import numpy as np

from facedancer.atomic import atomic_path, write_text_atomic
from facedancer.errors import FaceDancerError
from facedancer.train_options import TrainOptions

log = logging.getLogger(__name__)

LOSS_TAGS = {
    "g_adv": "Loss/G/adv",
    "reconstruction": "Loss/G/reconstruction",
    "perceptual": "Loss/G/perceptual",
    "identity": "Loss/G/identity",
    "cycle": "Loss/G/cycle",
    "ifsr": "Loss/G/ifsr",
    "g_total": "Loss/G/total",
    "d_adv": "Loss/D/adv",
    "d_adv_real": "Loss/D/adv_real",
    "d_adv_fake": "Loss/D/adv_fake",
    "r1": "Loss/D/r1",
    "d_total": "Loss/D/total",
    "d_real": "Loss/D/real_logit",
    "d_fake": "Loss/D/fake_logit",
}


class TrainingError(FaceDancerError):
    """Training stopped for a reason the user must act on (non-finite loss, bad setup)."""


# ----------------------------------------------------------------------------------------------
# Run folders


def new_run_dir(log_dir: str | Path, name: str, attempts: int = 100) -> Path:
    """`log_dir/NNNNN-name`, numbered after the runs already there.

    The folder is created exclusively: two runs started at once never share one; the loser takes the next number.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        numbers = [int(m.group(1)) for p in log_dir.iterdir() if (m := re.match(r"^(\d{5})-", p.name))]
        run_dir = log_dir / f"{max(numbers, default=-1) + 1:05d}-{name}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise FaceDancerError(f"could not create a new run folder under {log_dir} after {attempts} attempts")


def run_checkpoint_dir(run_dir: Path) -> Path:
    """Where a run saved its checkpoints: its --chkp_dir from options.json, else RUN/checkpoints."""
    try:
        saved = json.loads((run_dir / "options.json").read_text()).get("chkp_dir")
    except (OSError, ValueError, AttributeError):
        saved = None
    return Path(saved) if saved else run_dir / "checkpoints"


def has_checkpoint(run_dir: Path) -> bool:
    return (run_checkpoint_dir(run_dir) / "checkpoint").is_file()


def latest_run_dir(log_dir: str | Path, name: str) -> Path:
    """The newest run named `name` that has a checkpoint (runs that failed before their first one are passed)."""
    runs = sorted(p for p in Path(log_dir).glob(f"[0-9][0-9][0-9][0-9][0-9]-{name}") if p.is_dir())
    if not runs:
        raise FaceDancerError(f"no run named {name!r} under {log_dir} to resume; start one without --resume")
    for run in reversed(runs):
        if has_checkpoint(run):
            return run
    raise FaceDancerError(
        f"no run named {name!r} under {log_dir} has a checkpoint to resume ({len(runs)} without one); "
        "start a new run without --resume"
    )


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2))


# ----------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Builds the models under a distribution strategy and runs the GAN loop."""

    def __init__(self, options: TrainOptions, run_dir: Path, strategy=None, restore_dir: Path | None = None):
        """`restore_dir`: where to restore checkpoints from when it is not where this process saves them
        (a non-chief worker saves to a private folder but restores the chief's checkpoints)."""
        import keras
        import tensorflow as tf

        from facedancer.distribute import is_chief, make_strategy

        self.options = options
        self.run_dir = Path(run_dir)
        self.strategy = strategy or make_strategy(options.strategy, options.cpu_replicas)
        self.chief = is_chief(self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        log.info(
            "%s with %d replica(s), %d images each per step",
            type(self.strategy).__name__,
            replicas,
            options.batch_size // max(replicas, 1),
        )
        if options.batch_size % replicas:
            raise FaceDancerError(f"--batch_size {options.batch_size} must be divisible by the {replicas} replicas")
        if options.jit and options.antialias_identity_resize:
            raise FaceDancerError("--antialias_identity_resize has no XLA kernel: drop it or --jit")
        self.policy = None
        if options.mixed_precision:
            self.policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
            keras.config.set_dtype_policy(self.policy)
        try:
            with self.strategy.scope():
                self._build_models()
                self._build_optimizers()
        finally:
            if self.policy:
                keras.config.set_dtype_policy("float32")
        self.checkpoint = tf.train.Checkpoint(
            generator=self.G,
            discriminator=self.D,
            g_optimizer=self.g_opt,
            d_optimizer=self.d_opt,
            step=self.step,
            rng=self.rng,
        )
        chkp_dir = Path(options.chkp_dir) if options.chkp_dir and self.chief else self.run_dir / "checkpoints"
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(chkp_dir), max_to_keep=options.keep_checkpoints)
        self.restore_dir = Path(restore_dir) if restore_dir else chkp_dir
        self._train_fn = None
        self._train_fn_calls = 0
        self._stop_signal: int | None = None

    # -- setup ---------------------------------------------------------------------------------

    def _build_models(self) -> None:
        import tensorflow as tf

        from facedancer.identity import feature_model
        from facedancer.init_sources import init_sources
        from facedancer.models import load
        from facedancer.nn import build_discriminator, build_generator

        o = self.options
        self.lr_start = o.lr
        g_source, d_source = init_sources(o.init_from, o.init_discriminator_from)
        if g_source:
            self.G = self._load_network(g_source, "generator", "--init_from")
            self._continue_original_schedule(g_source)
        else:
            self.G = build_generator(o.generator_config())
        if d_source:
            self.D = self._load_network(d_source, "discriminator", "--init_discriminator_from")
        else:
            try:
                self.D = build_discriminator(o.image_size, channels=o.d_channels)
            except ValueError as exc:
                raise FaceDancerError(f"--d_channels / --image_size: {exc}") from exc
        arcface = load(o.arcface_path, kind="identity").model
        arcface.trainable = False
        self.identity_input = int(arcface.inputs[0].shape[1])
        blocks = list(o.ifsr_blocks) if o.ifsr_lambda > 0 else []
        self.encoder = feature_model(arcface, blocks) if blocks else arcface
        self.encoder.trainable = False
        self.ifsr_blocks = blocks
        self.margins = self._margins(blocks) if blocks else []
        self.vgg = None
        if o.p_lambda > 0:
            from facedancer.perceptual import perceptual_model

            self.vgg = perceptual_model(
                o.perceptual_weights, tuple(o.p_blocks), o.image_size, caffe_input=o.perceptual_caffe_input
            )
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.rng = tf.random.Generator.from_seed(o.seed)

    def _load_network(self, source, kind: str, flag: str):
        """G or D from a file load_model reads (legacy .h5, checkpoint json + weights, .keras), at --image_size."""
        from facedancer.models import load

        loaded = load(source.path, weights=source.weights, kind=kind)
        log.info("%s from %s (%s)", kind, source.weights or source.path, loaded.format)
        size = loaded.model.inputs[0].shape[1]
        if int(size) != self.options.image_size:
            raise FaceDancerError(
                f"{flag} {source.path} works at {size}² but --image_size is {self.options.image_size}"
            )
        if self.policy:  # the same weights, computing under the mixed policy
            from facedancer.nn.precision import with_dtype_policy

            return with_dtype_policy(loaded.model, self.policy)
        return loaded.model

    def _continue_original_schedule(self, g_source) -> None:
        """Continuing an original run (--init_from its checkpoint folder, with state/N.json): as the original's
        `--load`, the schedule restarts from lr · decay^(iteration / decay steps), not from --lr itself."""
        from facedancer.init_sources import continued_learning_rate

        o = self.options
        if not (o.init_from and Path(o.init_from).is_dir() and g_source.weights):
            return
        lr, iteration = continued_learning_rate(o.lr, o.lr_decay, o.lr_decay_steps, o.init_from, g_source.weights)
        if iteration:
            self.lr_start = lr
            log.info(
                "the original run was at iteration %d: its learning-rate schedule continues from %.3g "
                "(--lr %.3g decayed as the original does)",
                iteration,
                lr,
                o.lr,
            )

    def _margins(self, blocks: list[str]) -> list[float]:
        from facedancer.ifsr import load_margins

        o = self.options
        if o.ifsr_margin:
            if len(o.ifsr_margin) != len(blocks):
                raise FaceDancerError(f"--ifsr_margin has {len(o.ifsr_margin)} values for {len(blocks)} --ifsr_blocks")
            return [float(m) for m in o.ifsr_margin]
        return list(load_margins(o.ifsr_margins_file).select(blocks).values)

    def _build_optimizers(self) -> None:
        import keras

        o = self.options
        schedule = keras.optimizers.schedules.ExponentialDecay(self.lr_start, o.lr_decay_steps, o.lr_decay)
        self.schedule = schedule
        self.g_opt = keras.optimizers.Adam(schedule, beta_1=0.0, beta_2=0.99, name="g_adam")
        self.d_opt = keras.optimizers.Adam(schedule, beta_1=0.0, beta_2=0.99, name="d_adam")
        if self.policy == "mixed_float16":
            self.g_opt = keras.optimizers.LossScaleOptimizer(self.g_opt)
            self.d_opt = keras.optimizers.LossScaleOptimizer(self.d_opt)
        self.g_opt.build(self.G.trainable_variables)
        self.d_opt.build(self.D.trainable_variables)

    # -- the step ------------------------------------------------------------------------------

    def _to_identity_input(self, images):
        """The original's ArcFace input: tf.image.resize((x + 1) / 2, [112, 112]), plain bilinear."""
        import tensorflow as tf

        images = (tf.cast(images, tf.float32) + 1.0) / 2.0
        size = [self.identity_input, self.identity_input]
        return tf.image.resize(images, size, antialias=self.options.antialias_identity_resize)

    def _encode(self, images):
        """(embedding, [IFSR block features]) of images in [-1, 1]. The embedding is ArcFace's raw output,
        as the original feeds G; unit length only under --normalize_identity."""
        import tensorflow as tf

        out = self.encoder(self._to_identity_input(images), training=False)
        if self.ifsr_blocks:
            embedding, features = out[0], list(out[1:])
        else:
            embedding, features = out, []
        embedding = tf.cast(embedding, tf.float32)
        if self.options.normalize_identity:
            embedding = tf.math.l2_normalize(embedding, axis=-1)
        return embedding, features

    def identity_embedding(self, images):
        """The identity vector G receives for images in [-1, 1] (raw ArcFace output unless --normalize_identity)."""
        return self._encode(images)[0]

    def _replica_step(self, target, source, same):
        import tensorflow as tf

        from facedancer import losses

        o = self.options
        scale = 1.0 / self.strategy.num_replicas_in_sync
        z_source, _ = self._encode(source)
        z_target, target_features = self._encode(target)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            swap = self.G([target, z_source], training=True)
            with tf.GradientTape() as r1_tape:
                r1_tape.watch(source)
                real = tf.cast(self.D(source, training=True), tf.float32)
                real_sum = tf.reduce_sum(real)
            r1 = losses.r1_penalty(r1_tape.gradient(real_sum, source))
            fake = tf.cast(self.D(swap, training=True), tf.float32)
            d_adv_real, d_adv_fake = losses.d_adversarial_terms(real, fake)
            d_total = d_adv_fake + d_adv_real + o.r1_gamma * 0.5 * r1

            g_adv = losses.g_adversarial(fake)
            z_swap, swap_features = self._encode(swap)
            zero = tf.constant(0.0)
            terms = {
                "g_adv": g_adv,
                "reconstruction": losses.reconstruction(target, swap, same, o.reconstruction_clip),
                "perceptual": (
                    losses.perceptual(self.vgg(target), self.vgg(swap), same) if self.vgg is not None else zero
                ),
                "identity": losses.identity(z_source, z_swap),
                "cycle": losses.cycle(target, self.G([swap, z_target], training=True)) if o.c_lambda > 0 else zero,
                "ifsr": (
                    losses.ifsr(target_features, swap_features, self.margins, o.ifsr_scale, o.ifsr_per_sample)
                    if self.ifsr_blocks
                    else zero
                ),
            }
            g_total = (
                g_adv
                + o.r_lambda * terms["reconstruction"]
                + o.i_lambda * terms["identity"]
                + o.c_lambda * terms["cycle"]
                + o.p_lambda * terms["perceptual"]
                + o.ifsr_lambda * terms["ifsr"]
            )
            g_loss, d_loss = g_total * scale, d_total * scale
            if self.policy == "mixed_float16":
                g_loss, d_loss = self.g_opt.scale_loss(g_loss), self.d_opt.scale_loss(d_loss)
        d_grads = d_tape.gradient(d_loss, self.D.trainable_variables)
        g_grads = g_tape.gradient(g_loss, self.G.trainable_variables)
        self.d_opt.apply_gradients(zip(d_grads, self.D.trainable_variables, strict=True))
        self.g_opt.apply_gradients(zip(g_grads, self.G.trainable_variables, strict=True))
        return {
            **terms,
            "g_total": g_total,
            "d_adv": d_adv_real + d_adv_fake,
            "d_adv_real": d_adv_real,
            "d_adv_fake": d_adv_fake,
            "r1": r1,
            "d_total": d_total,
            "d_real": tf.reduce_mean(real),
            "d_fake": tf.reduce_mean(fake),
        }

    def train_function(self):
        import tensorflow as tf

        if self._train_fn is None:
            strategy = self.strategy

            def step(batch):
                per_replica = strategy.run(self._replica_step, args=batch)
                self.step.assign_add(1)
                return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}

            self._train_fn = tf.function(step, jit_compile=self.options.jit)
        return self._train_fn

    # -- previews and validation -----------------------------------------------------------------

    def preview(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        """Grid of target | source | swap | self-reconstruction for a batch (numpy in [-1, 1])."""
        import tensorflow as tf

        from facedancer.summaries import image_grid

        target_t = tf.constant(target)
        z_source, _ = self._encode(tf.constant(source))
        z_target, _ = self._encode(target_t)
        swap = tf.cast(self.G([target_t, z_source], training=False), tf.float32).numpy()
        self_rec = tf.cast(self.G([target_t, z_target], training=False), tf.float32).numpy()
        return image_grid([target, source, swap, self_rec])

    def evaluate(self, dataset, batches: int) -> tuple[dict[str, float], np.ndarray | None]:
        """Identity cosine of swap to source and to target, IFSR distances, self-pair reconstruction L1."""
        import tensorflow as tf

        from facedancer import losses

        sums: dict[str, float] = {}
        count, rec_weight, grid = 0, 0.0, None
        for target, source, same in dataset.take(batches):
            z_source, _ = self._encode(source)
            z_target, target_features = self._encode(target)
            swap = tf.cast(self.G([target, z_source], training=False), tf.float32)
            z_swap, swap_features = self._encode(swap)
            n = int(target.shape[0])
            values = {
                "Val/identity/cos_swap_source": float(tf.reduce_mean(losses.cosine_similarity(z_swap, z_source))),
                "Val/identity/cos_swap_target": float(tf.reduce_mean(losses.cosine_similarity(z_swap, z_target))),
            }
            if self.ifsr_blocks:
                for block, d in zip(
                    self.ifsr_blocks, losses.ifsr_distances(target_features, swap_features).numpy(), strict=True
                ):
                    values[f"Val/ifsr/{block}"] = float(d)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * n
            selected = float(tf.reduce_sum(same))
            if selected:
                per_sample = tf.reduce_mean(tf.abs(target - swap), axis=[1, 2, 3])
                rec = float(tf.reduce_sum(per_sample * tf.cast(same, tf.float32)))  # plain L1 of the self pairs
                sums["Val/reconstruction_l1"] = sums.get("Val/reconstruction_l1", 0.0) + rec
                rec_weight += selected
            count += n
            if grid is None:
                grid = self.preview(target.numpy(), source.numpy())
        if not count:
            raise FaceDancerError("the --eval_dir shards hold no complete batch")
        metrics = {k: v / (rec_weight if k == "Val/reconstruction_l1" else count) for k, v in sums.items()}
        return metrics, grid

    # -- checkpoints and export -----------------------------------------------------------------

    def restore(self, step: int | None = None) -> int:
        """Restore the latest checkpoint (or the one at `step`); returns the step restored (0: none)."""
        import tensorflow as tf

        state = tf.train.get_checkpoint_state(str(self.restore_dir))
        available = list(state.all_model_checkpoint_paths) if state else []
        if step is not None:
            path = next((p for p in available if p.endswith(f"-{step}")), None)
            if path is None:
                raise FaceDancerError(
                    f"no checkpoint at step {step} in {self.restore_dir}; "
                    f"have {[int(p.rsplit('-', 1)[1]) for p in available]}"
                )
        else:
            path = tf.train.latest_checkpoint(str(self.restore_dir))
        if path is None:
            return 0
        self.checkpoint.restore(path).assert_existing_objects_matched()
        log.info("restored %s (step %d)", path, int(self.step.numpy()))
        return int(self.step.numpy())

    def save(self) -> str:
        path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        log.info("checkpoint %s", path)
        return path

    def export(self, legacy: bool = False) -> list[Path]:
        """The generator as one .keras file (float32), and the original's .h5 format on request."""
        from facedancer.legacy import save_legacy_h5
        from facedancer.nn.precision import with_dtype_policy

        out_dir = self.run_dir / "export"
        out_dir.mkdir(parents=True, exist_ok=True)
        model = with_dtype_policy(self.G, "float32") if self.policy else self.G
        step = int(self.step.numpy())
        target = out_dir / f"generator_{step:08d}.keras"
        with atomic_path(target) as tmp:
            model.save(tmp)
        written = [target]
        if legacy:
            h5 = out_dir / f"generator_{step:08d}.h5"
            save_legacy_h5(model, h5)
            written.append(h5)
        for path in written:
            log.info("exported %s", path)
        return written

    # -- the loop --------------------------------------------------------------------------------

    def _handle_signal(self, signum, frame):
        log.warning("received %s: saving a checkpoint after this step", signal.Signals(signum).name)
        self._stop_signal = signum

    def fit(self, dataset, eval_dataset=None, progress: bool = True, seconds: float | None = None) -> dict:
        """Train until max_steps, or until `seconds` of wall time (first step included) are spent, whichever comes
        first; returns the last step's losses. Stops cleanly on SIGINT/SIGTERM."""
        import tensorflow as tf

        from facedancer.distribute import is_multi_worker
        from facedancer.progress import bar as progress_bar
        from facedancer.progress import keep_alive
        from facedancer.summaries import write_image, write_scalars

        o = self.options
        logs = self.run_dir / "logs"
        train_writer = tf.summary.create_file_writer(str(logs / "train"))
        val_writer = tf.summary.create_file_writer(str(logs / "val")) if eval_dataset is not None else None
        start = int(self.step.numpy())
        if start >= o.max_steps:
            log.info("step %d already reached --max_steps %d", start, o.max_steps)
            return {}
        previous = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        train_fn = self.train_function()
        if is_multi_worker(self.strategy):  # each worker keeps its share of the records, whatever the file count
            data_options = tf.data.Options()
            data_options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            dataset = dataset.with_options(data_options)
        distributed = iter(self.strategy.experimental_distribute_dataset(dataset))
        plain = iter(dataset.take(1))
        preview_batch = [t.numpy() for t in next(plain)][:2]
        last: dict = {}
        t_last, s_last = time.perf_counter(), start
        fit_start = t_last
        deadline = None if seconds is None else t_last + seconds
        if self._train_fn_calls == 0:
            log.info("tracing and optimizing the training step (the first step takes longest)")
        bar = progress_bar(
            total=o.max_steps if deadline is None else None,
            initial=start,
            unit="step",
            desc="training" if deadline is None else f"training for {seconds / 60:.1f} min",
            enabled=progress,
        )
        stop_redraw = keep_alive(bar)
        try:
            while int(self.step.numpy()) < o.max_steps and self._stop_signal is None:
                out = train_fn(next(distributed))
                self._train_fn_calls += 1
                step = int(self.step.numpy())
                out_of_time = deadline is not None and time.perf_counter() >= deadline
                last = {k: float(v) for k, v in out.items()}
                bad = [k for k, v in last.items() if not math.isfinite(v)]
                if bad:
                    raise TrainingError(
                        f"non-finite loss {', '.join(f'{k}={last[k]}' for k in bad)} at step {step}; "
                        f"stopping (last checkpoint: {self.manager.latest_checkpoint or 'none'})"
                    )
                bar.update()
                if step % o.log_every == 0 or step == o.max_steps or out_of_time:
                    now = time.perf_counter()
                    scalars = {LOSS_TAGS[k]: v for k, v in last.items()}
                    scalars["Train/learning_rate"] = float(self.schedule(step))
                    scalars["Train/steps_per_sec"] = (step - s_last) / max(now - t_last, 1e-9)
                    scalars["Train/images_per_sec"] = scalars["Train/steps_per_sec"] * o.batch_size
                    t_last, s_last = now, step
                    write_scalars(train_writer, scalars, step)
                    bar.set_postfix(
                        g=f"{last['g_total']:.3f}",
                        d=f"{last['d_total']:.3f}",
                        img_s=f"{scalars['Train/images_per_sec']:.2f}",
                        refresh=False,
                    )
                if self.chief and (step % o.image_every == 0 or step == o.max_steps or out_of_time):
                    write_image(
                        train_writer,
                        "Images/train",
                        self.preview(*preview_batch),
                        step,
                        "rows: samples; columns: " + " | ".join(("target", "source", "swap", "self-rec")),
                    )
                if (
                    self.chief
                    and val_writer is not None
                    and (step % o.eval_every == 0 or step == o.max_steps or out_of_time)
                ):
                    metrics, grid = self.evaluate(eval_dataset, o.eval_batches)
                    write_scalars(val_writer, metrics, step)
                    if grid is not None:
                        write_image(val_writer, "Images/val", grid, step)
                if step % o.ckpt_every == 0:
                    self.save()
                if out_of_time:
                    log.info("time budget of %.1f min spent at step %d", seconds / 60, step)
                    break
        finally:
            stop_redraw()
            bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        step = int(self.step.numpy())
        if step > start and not (self.manager.latest_checkpoint or "").endswith(f"-{step}"):
            self.save()
        elapsed = time.perf_counter() - fit_start
        log.info(
            "trained steps %d-%d in %.1f s (%.2f images/s)",
            start + 1,
            step,
            elapsed,
            (step - start) * o.batch_size / max(elapsed, 1e-9),
        )
        return last

    @property
    def stopped_by_signal(self) -> int | None:
        """SIGINT/SIGTERM number when a signal ended the last fit early (a checkpoint was saved)."""
        return self._stop_signal

"""Training on shards of real photos with a stand-in ArcFace: losses, logs, checkpoints, resume, export."""

import glob
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from standins import save_arcface_standin, vgg16_notop_file

import facedancer
from facedancer.shards import ShardOptions, write_shards
from facedancer.train_options import TrainOptions
from facedancer.training import LOSS_TAGS, Trainer, TrainingError

SIZE = 64
# The demo's lighter discriminator (3x cheaper steps at 64²): these tests are about the training loop; the
# default discriminator is checked against the original's files in test_parity_networks and test_train_parity.
D_CHANNELS = [128, 256, 512, 512]


@pytest.fixture(scope="module")
def setup(aligned_tree, tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    write_shards(
        aligned_tree,
        root / "shards",
        ShardOptions(data_name="faces", images_per_shard=3, val_fraction=0.34, seed=3),
        progress=False,
    )
    arcface = save_arcface_standin(root / "ArcFace-Res50.h5")
    vgg = vgg16_notop_file(root / "vgg16_notop.h5", SIZE)
    return {
        "root": root,
        "train": str(root / "shards" / "faces_train_*-of-*.records"),
        "val": str(root / "shards" / "faces_val_*-of-*.records"),
        "arcface": str(arcface),
        "vgg": str(vgg),
    }


def _train_args(setup, *extra) -> list[str]:
    return [
        sys.executable,
        "train/train.py",
        "--data_dir",
        setup["train"],
        "--arcface_path",
        setup["arcface"],
        "--image_size",
        str(SIZE),
        "--d_channels",
        ",".join(map(str, D_CHANNELS)),
        "--log_dir",
        str(setup["root"] / "runs"),
        *extra,
    ]


def _train_cli(setup, *extra, timeout=600):
    return subprocess.run(_train_args(setup, *extra), capture_output=True, text=True, timeout=timeout)


def _events(run_dir: Path, split: str) -> dict[str, list[tuple[int, str]]]:
    tags: dict[str, list] = {}
    for path in sorted(glob.glob(str(run_dir / "logs" / split / "events.out.tfevents.*"))):
        for raw in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append((event.step, value.metadata.plugin_data.plugin_name))
    return tags


@pytest.fixture(scope="module")
def trained(setup):
    result = _train_cli(
        setup,
        "--eval_dir",
        setup["val"],
        "--perceptual_weights",
        setup["vgg"],
        "--batch_size",
        "3",
        "--max_steps",
        "4",
        "--log_every",
        "1",
        "--image_every",
        "2",
        "--eval_every",
        "2",
        "--ckpt_every",
        "2",
        "--export",
        "--export_legacy",
        "--log_name",
        "first",
        "--seed",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(setup["root"] / "runs" / "00000-first")
    return run_dir, result


def test_run_folder_checkpoints_and_logs(trained):
    run_dir, result = trained
    options = json.loads((run_dir / "options.json").read_text())
    assert options["batch_size"] == 3 and options["image_size"] == SIZE and options["seed"] == 1
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-4.index"]
    assert f"tensorboard --logdir {run_dir / 'logs'}" in result.stderr
    train = _events(run_dir, "train")
    for tag in [*LOSS_TAGS.values(), "Train/learning_rate", "Train/steps_per_sec", "Train/images_per_sec"]:
        assert tag in train, tag
        assert all(plugin == "scalars" for _, plugin in train[tag])
    assert [step for step, _ in train["Loss/G/total"]] == [1, 2, 3, 4]
    assert [step for step, plugin in train["Images/train"] if plugin == "images"] == [2, 4]
    val = _events(run_dir, "val")
    for tag in [
        "Val/identity/cos_swap_source",
        "Val/identity/cos_swap_target",
        "Val/reconstruction_l1",
        "Val/ifsr/conv4_block6_out",
        "Val/ifsr/conv2_block3_out",
        "Images/val",
    ]:
        assert tag in val, tag


def test_tensorboard_serves_the_tags(trained):
    run_dir, _ = trained
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(run_dir / "logs"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, tags = time.time() + 90, {}
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as r:
                    tags = json.loads(r.read())
                if "Loss/G/total" in tags.get("train", {}) and tags.get("val"):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert "Loss/G/total" in tags["train"] and "Loss/D/r1" in tags["train"]
        assert "Val/identity/cos_swap_source" in tags["val"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/images/tags", timeout=5) as r:
            assert "Images/train" in json.loads(r.read())["train"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _options(setup, **kw):
    base = dict(
        data_dir=setup["train"],
        arcface_path=setup["arcface"],
        image_size=SIZE,
        d_channels=D_CHANNELS,
        batch_size=2,
        p_lambda=0.0,
        log_every=1000,
        image_every=1000,
        ckpt_every=1000,
        eval_every=1000,
    )
    return TrainOptions(**{**base, **kw})


def _dataset(options, seed=0, same_ratio=None, augment=True):
    from facedancer.data import PipelineOptions, make_dataset

    return make_dataset(
        options.data_dir,
        PipelineOptions(
            batch_size=options.batch_size,
            image_size=options.image_size,
            seed=seed,
            same_ratio=options.same_ratio if same_ratio is None else same_ratio,
            augment=augment,
        ),
    )


def test_export_reproduces_the_trained_generator(trained, setup):
    run_dir, _ = trained
    options = TrainOptions(**json.loads((run_dir / "options.json").read_text()))
    trainer = Trainer(options, run_dir)
    assert trainer.restore() == 4
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32"))
    z = tf.math.l2_normalize(tf.constant(rng.normal(size=(2, 512)).astype("float32")), axis=1)
    expected = trainer.G([x, z]).numpy()
    for name in ("generator_00000004.keras", "generator_00000004.h5"):
        exported = facedancer.load_model(run_dir / "export" / name, kind="generator")
        np.testing.assert_allclose(exported([x, z]).numpy(), expected, atol=1e-5)


def test_resume_continues_at_the_saved_step_with_equal_optimizer_state(trained, setup):
    run_dir, _ = trained
    options = TrainOptions(**json.loads((run_dir / "options.json").read_text()))
    trainer = Trainer(options, run_dir)
    assert trainer.restore(4) == 4
    assert int(trainer.g_opt.iterations.numpy()) == 4 and int(trainer.d_opt.iterations.numpy()) == 4
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / "ckpt-4"))
    saved = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.startswith("g_optimizer/")]
    moments = [v.numpy() for v in trainer.g_opt.variables if v.shape.rank and v.shape.rank > 0]
    assert moments and all(any(s.shape == m.shape and np.array_equal(s, m) for s in saved) for m in moments)
    assert any(np.abs(m).max() > 0 for m in moments)

    result = _train_cli(setup, "--resume", str(run_dir), "--max_steps", "6", "--log_every", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(step 4)" in result.stderr
    assert (run_dir / "checkpoints" / "ckpt-6.index").exists()
    steps = sorted({s for s, _ in _events(run_dir, "train")["Loss/G/total"]})
    assert steps == [1, 2, 3, 4, 5, 6]


def test_steps_change_both_networks_with_finite_losses_at_batch_1(setup, tmp_path):
    options = _options(setup, batch_size=1, max_steps=2)
    trainer = Trainer(options, tmp_path)
    g_before = [w.copy() for w in trainer.G.get_weights()]
    d_before = [w.copy() for w in trainer.D.get_weights()]
    last = trainer.fit(_dataset(options), progress=False)
    assert set(last) >= {"g_adv", "identity", "reconstruction", "cycle", "ifsr", "d_adv", "r1"}
    assert all(math.isfinite(v) for v in last.values())
    assert any(not np.array_equal(a, b) for a, b in zip(g_before, trainer.G.get_weights(), strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, trainer.D.get_weights(), strict=True))


def test_non_finite_loss_stops_the_run_naming_the_step(setup, tmp_path):
    options = _options(setup, max_steps=3)
    trainer = Trainer(options, tmp_path)
    kernel = next(v for v in trainer.G.trainable_variables if "kernel" in v.path)
    kernel.assign(tf.fill(kernel.shape, float("nan")))
    with pytest.raises(TrainingError, match=r"non-finite loss .* at step 1"):
        trainer.fit(_dataset(options), progress=False)
    assert trainer.manager.latest_checkpoint is None  # nothing poisoned was saved


def test_overfitting_two_images_lowers_reconstruction(aligned_tree, setup, tmp_path):
    pair = tmp_path / "pair"
    for name in ("obama/obama.png", "biden/biden.png"):
        (pair / name).parent.mkdir(parents=True, exist_ok=True)
        (pair / name).write_bytes((aligned_tree / name).read_bytes())
    write_shards(pair, tmp_path / "shards", ShardOptions(data_name="pair"), progress=False)
    # The reconstruction term leads: with the random stand-in ArcFace the identity, cycle and IFSR terms pull
    # elsewhere, and the early adversarial game can outweigh a weight of 5 over a few steps.
    options = _options(
        setup,
        data_dir=str(tmp_path / "shards" / "pair_train_*-of-*.records"),
        lr=2e-4,
        r_lambda=50.0,
        same_ratio=1.0,
        max_steps=1,
        i_lambda=0.0,
        c_lambda=0.0,
        ifsr_lambda=0.0,
    )
    options.max_steps, options.log_every = 30, 1
    trainer = Trainer(options, tmp_path / "run")
    batch = next(iter(_dataset(options, same_ratio=1.0, augment=False)))  # memorising needs the same pixels
    trainer.fit(dataset_once(batch), progress=False)
    history = _scalars(tmp_path / "run", LOSS_TAGS["reconstruction"])
    assert len(history) == 30, history
    first, last = np.mean(history[:3]), np.mean(history[-3:])
    assert last < 0.6 * first, history


def _scalars(run_dir: Path, tag: str) -> list[float]:
    """The values TensorBoard shows for `tag`, in step order."""
    values = []
    for path in sorted(glob.glob(str(run_dir / "logs" / "train" / "events.out.tfevents.*"))):
        for raw in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            values += [(event.step, float(tf.make_ndarray(v.tensor))) for v in event.summary.value if v.tag == tag]
    return [value for _, value in sorted(values)]


def dataset_once(batch):
    return tf.data.Dataset.from_tensors(batch).repeat()


def test_mirrored_strategy_on_two_cpu_devices(setup):
    result = _train_cli(
        setup,
        "--cpu_replicas",
        "2",
        "--batch_size",
        "2",
        "--max_steps",
        "2",
        "--p_lambda",
        "0",
        "--log_name",
        "mirrored",
        "--log_every",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy with 2 replica(s), 1 images each per step" in result.stderr
    run_dir = next((setup["root"] / "runs").glob("*-mirrored"))
    assert (run_dir / "checkpoints" / "ckpt-2.index").exists()


def test_sigterm_saves_a_checkpoint_and_exits_143(setup):
    args = _train_args(
        setup,
        "--batch_size",
        "2",
        "--max_steps",
        "100000",
        "--p_lambda",
        "0",
        "--log_every",
        "1",
        "--log_name",
        "killed",
    )
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            runs = list((setup["root"] / "runs").glob("*-killed/logs/train/events*"))
            if runs and "Loss/G/total" in _events(runs[0].parents[2], "train"):
                break
            time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    run_dir = next((setup["root"] / "runs").glob("*-killed"))
    assert list((run_dir / "checkpoints").glob("ckpt-*.index"))
    assert f"resume with --resume {run_dir}" in stderr


def test_missing_vgg_weights_say_where_to_put_them(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(
        facedancer.FaceDancerError,
        match=r"vgg16_weights_tf_dim_ordering_tf_kernels_notop\.h5.*"
        r"--perceptual_weights.*--p_lambda 0",
    ):
        Trainer(_options(setup, p_lambda=0.2), tmp_path / "run")


def test_ifsr_margins_command_writes_margins_for_the_encoder(aligned_tree, setup, tmp_path):
    out = tmp_path / "margins.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "facedancer.cli.main",
            "ifsr-margins",
            "--data_dir",
            str(aligned_tree),
            "--arcface_path",
            setup["arcface"],
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    from facedancer.ifsr import IFSR_BLOCKS

    assert data["blocks"] == list(IFSR_BLOCKS) and len(data["margins"]) == len(IFSR_BLOCKS)
    assert all(0.0 <= m <= 2.0 for m in data["margins"]) and "10 same-identity pairs" in data["description"]


@pytest.mark.slow  # two train.py processes tracing at once, ~1 min; MirroredStrategy stays in the default run
def test_multi_worker_strategy_from_tf_config_on_loopback(setup, tmp_path):
    """Two worker processes on this machine, as two machines would run: the chief writes the run folder."""
    import json as json_

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json_.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = _train_args(
            setup,
            "--strategy",
            "multiworker",
            "--batch_size",
            "2",
            "--max_steps",
            "2",
            "--p_lambda",
            "0",
            "--log_name",
            "multi",
            "--log_every",
            "1",
        )
        args[args.index("--log_dir") + 1] = str(tmp_path)
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600)[1] for p in procs]
    assert procs[0].returncode == 0, outputs[0][-3000:]
    assert "with 2 replica(s), 1 images each per step" in outputs[0]
    assert (tmp_path / "multi" / "checkpoints" / "ckpt-2.index").exists()
    assert [s for s, _ in _events(tmp_path / "multi", "train")["Loss/G/total"]] == [1, 2]
    assert procs[1].returncode == 0, outputs[1][-3000:]
    assert "training: 100%" in outputs[1]  # the second worker took part in both steps

"""The README's main command, in its reduced mode: every stage runs, says so, and the report opens in a real browser
with every image and the video loaded; plus the command-line conventions (`python -m facedancer`, -v/-q anywhere)."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from browser import artifact_dir, headless_chromium, wait_for

from facedancer.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # scripts under dataset/ etc. import this checkout's package
STAGES = ("photos", "align", "shard", "train", "swap", "evaluate", "report")


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """`python -m facedancer demo --quick` once for the module: (output folder, completed process)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    result = subprocess.run(
        [sys.executable, "-m", "facedancer", "demo", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_demo_quick_runs_end_to_end(quick_demo):
    out, result = quick_demo
    report = out / "report.html"
    assert result.stdout.strip().endswith(str(report))
    text = report.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert len(links) >= 12
    for link in links:
        assert (out / link).exists(), link
    assert "cannot make a good face swapper" in text and "random weights" in text
    assert "facedancer swap --facedancer_path" in text
    for name in ("swapped.mp4", "target.mp4", "evaluation/results.json", "evaluation/chart.png", "frame_strip.png"):
        assert (out / name).exists()
    assert list(Path(out / "runs").glob("*-demo/logs/train/events.out.tfevents.*"))
    assert "judge_dist_source" in (out / "evaluation" / "results.csv").read_text()


def test_demo_prints_every_stage_with_its_time_and_bars(quick_demo):
    _, result = quick_demo
    log = result.stderr
    for number, name in enumerate(STAGES, 1):
        assert re.search(rf"demo {number}/7 {name}: .* …", log), name
        assert re.search(rf"demo {number}/7 {name}: .* done in \d+\.\d s", log), name
    assert re.search(r"training for .* min: .*step", log)  # the training bar (the quick demo has a time budget)
    assert "img_s=" in log
    assert re.search(r"swapping: .*frame", log) and re.search(r"evaluating: .*pair", log)


def test_report_reads_as_tables_curves_and_grouped_charts(quick_demo):
    from facedancer.video import probe

    out, _ = quick_demo
    text = (out / "report.html").read_text()
    assert "{&quot;" not in text and '{"' not in text  # no raw JSON
    stage_table = text.split("<h2>Stages</h2>")[1].split("</table>")[0]
    for number, name in enumerate(STAGES, 1):
        assert f"<td>{number}/7 {name}</td>" in stage_table, name
    assert re.search(r"<th>total</th><th class=num>\d+\.\d</th><th class=num>\d+\.\d</th>", stage_table)
    curves = sorted((out / "loss_curves").glob("*.png"))
    assert {"loss_g_total.png", "loss_d_total.png", "train_images_per_sec.png"} <= {p.name for p in curves}
    for group in ("identity similarity", "identity distance", "head pose error (degrees)", "expression error"):
        assert group in text, group
    assert "higher is better" in text and "lower is better" in text
    assert re.search(r'<video controls [^>]*src="swapped.mp4"', text)
    info = probe(out / "swapped.mp4")
    assert info.codec == "h264" and info.width % 2 == 0 and info.height % 2 == 0


def test_report_in_a_real_browser(quick_demo):
    out, _ = quick_demo
    with headless_chromium() as driver:
        driver.get((out / "report.html").resolve().as_uri())
        images = wait_for(
            driver,
            "const i = [...document.images]; "
            "return i.length && i.every(x => x.complete) && i.map(x => [x.getAttribute('src'), x.naturalWidth]);",
        )
        assert len(images) >= 5
        assert all(width > 0 for _, width in images), images
        state = wait_for(
            driver,
            "const v = document.querySelector('video'); v.muted = true; "
            "return (v.readyState >= 2 || v.error) && [v.readyState, v.error && v.error.code, v.duration];",
        )
        assert state[1] is None and state[0] >= 2 and state[2] > 0, state
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(int(height) + 40, 8000))  # the whole page in the screenshot
        shot = artifact_dir() / "demo_report.png"
        driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "align", "--data_dir", "a", "--target_dir", "b"],
        ["align", "--data_dir", "a", "--target_dir", "b", "-v"],
        ["align", "-v", "--data_dir", "a", "--target_dir", "b"],
        ["swap", "--facedancer_path", "g.h5", "--target", "t.mp4", "--swap_source", "s.jpg", "--output", "o.mp4", "-v"],
        ["train", "--data_dir", "x", "--verbose"],
    ],
)
def test_verbose_is_accepted_before_and_after_the_subcommand(argv):
    args = build_parser().parse_args(argv)
    assert args.verbose is True and args.quiet is False


def test_quiet_after_the_subcommand_and_the_default():
    parser = build_parser()
    assert parser.parse_args(["shard", "--verify", "x", "-q"]).quiet is True
    assert parser.parse_args(["-q", "shard", "--verify", "x"]).quiet is True
    default = parser.parse_args(["shard", "--verify", "x"])
    assert default.quiet is False and default.verbose is False


def test_quiet_turns_bars_off_and_keeps_stage_lines_at_info(caplog):
    from facedancer.progress import bar, set_quiet, stage

    try:
        set_quiet(True)
        assert bar(range(3), desc="x").disable
        set_quiet(False)
        assert not bar(range(3), desc="x").disable
        assert bar(range(3), desc="x", enabled=False).disable
    finally:
        set_quiet(False)
    with caplog.at_level(logging.INFO, logger="facedancer"), stage("unit stage") as s:
        s.note = "3 items"
    assert [r.getMessage() for r in caplog.records][-2] == "unit stage …"
    assert re.fullmatch(r"unit stage done in \d+\.\d s \(3 items\)", caplog.records[-1].getMessage())
    assert s.seconds is not None and s.seconds >= 0


@pytest.mark.parametrize("script", ["dataset/crop_align.py", "video_swap/image_swap.py"])
def test_scripts_accept_verbosity_flags_after_their_arguments(script, tmp_path):
    result = subprocess.run(
        [sys.executable, script, "--help", "-q"], capture_output=True, text=True, timeout=120, cwd=REPO, env=ENV
    )
    assert result.returncode == 0 and "-q, --quiet" in result.stdout and "-v, --verbose" in result.stdout
    missing = tmp_path / "missing"
    args = ["--data_dir", str(missing), "--target_dir", str(tmp_path / "o")]
    if "swap" in script:
        args = ["--facedancer_path", str(missing), "--img_path", str(missing), "--swap_source", str(missing)]
        args += ["--output", str(tmp_path / "o")]
    result = subprocess.run(
        [sys.executable, script, *args, "-v"], capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV
    )
    assert "unrecognized arguments" not in result.stderr and result.returncode == 1, result.stderr[-2000:]
    assert "missing" in result.stderr


def test_loss_curves_hold_the_logged_values(quick_demo):
    from facedancer.summaries import read_scalars

    out, _ = quick_demo
    scalars = read_scalars(next((out / "runs").glob("*-demo")) / "logs" / "train")
    text = (out / "report.html").read_text()
    last_total = float(re.search(r"<td>g_total</td><td class=num>([-\d.]+)</td>", text).group(1))
    assert scalars["Loss/G/total"][-1][1] == pytest.approx(last_total, abs=1e-4)
    assert all(step >= 1 for step, _ in scalars["Loss/D/r1"])


def test_demo_discriminator_takes_the_original_first_block_widths():
    from facedancer.nn.discriminator import build_discriminator

    light = build_discriminator(64, channels=(128, 256, 512, 512))
    assert [light.get_layer(f"down{i}_conv2").filters for i in range(1, 5)] == [128, 256, 512, 512]

    def multiply_adds(model) -> int:
        convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
        return sum(int(np.prod(c.output.shape[1:3])) * int(np.prod(c.kernel.shape)) for c in convs)

    assert multiply_adds(light) < multiply_adds(build_discriminator(64)) / 4
    with pytest.raises(ValueError, match="4 blocks"):
        build_discriminator(64, channels=(128, 256))


@pytest.mark.parametrize(
    ("isa", "native"), [(None, True), ("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True)]
)
def test_onednn_isa_cap_turns_native_bf16_off(isa, native, monkeypatch, tmp_path):
    """ONEDNN_MAX_CPU_ISA=AVX2 emulates an AVX2-only CPU: bf16 primitives cannot be created there."""
    from facedancer.nn.precision import cpu_has_native_bf16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if isa is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert cpu_has_native_bf16(str(cpuinfo)) is native


def test_keep_alive_redraws_a_bar_during_a_long_step():
    import io
    import time

    from facedancer.progress import bar, keep_alive

    stream = io.StringIO()
    progress = bar(total=None, desc="long step", unit="step", file=stream)
    stop = keep_alive(progress, seconds=0.05)
    time.sleep(0.5)
    stop()
    progress.close()
    assert stream.getvalue().count("long step") >= 4

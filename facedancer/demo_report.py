"""The demo's report.html: stage timings, training curves from the TensorBoard event files, the swapped video
beside a frame strip, evaluation scores grouped by unit with their direction, and every artefact's path."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facedancer.atomic import write_text_atomic

# TensorBoard tags drawn as curves, in report order (the losses the run logged; others are skipped).
CURVE_TAGS = (
    "Loss/G/total",
    "Loss/G/adv",
    "Loss/G/identity",
    "Loss/G/reconstruction",
    "Loss/G/cycle",
    "Loss/G/ifsr",
    "Loss/G/perceptual",
    "Loss/D/total",
    "Loss/D/adv",
    "Loss/D/r1",
    "Train/images_per_sec",
)


@dataclass
class DemoResults:
    """What the demo's stages produced, filled in as they run."""

    options: object
    out: Path
    stages: list[tuple[str, float | None, float | None, Path]] = field(default_factory=list)
    chosen: dict = field(default_factory=dict)
    align_counts: dict = field(default_factory=dict)
    arcface: Path | None = None
    real_arcface: bool = False
    run_dir: Path | None = None
    losses: dict = field(default_factory=dict)
    steps_done: int = 0
    train_loop_seconds: float = 0.0
    train_loop_cpu_seconds: float = 0.0
    exported: Path | None = None
    target_video: Path | None = None
    swapped_video: Path | None = None
    judge: bool = False
    summary: dict = field(default_factory=dict)
    reports: dict = field(default_factory=dict)
    loss_curves: list[tuple[str, Path]] = field(default_factory=list)
    frame_strip: Path | None = None


def loss_curves(log_dir: Path, out_dir: Path) -> list[tuple[str, Path]]:
    """A small PNG line chart per logged loss (read back from the TensorBoard event files)."""
    from facedancer.charts import line_chart
    from facedancer.summaries import read_scalars

    scalars = read_scalars(log_dir)
    written = []
    for tag in CURVE_TAGS:
        if tag in scalars:
            name = re.sub(r"[^A-Za-z0-9]+", "_", tag).strip("_").lower()
            written.append((tag, line_chart(scalars[tag], tag, out_dir / f"{name}.png")))
    return written


def frame_strip(target_video: Path, swapped_video: Path, path: Path, count: int = 6, height: int = 120) -> Path:
    """`count` frames spread over the video: targets on the top row, their swaps below."""
    import cv2

    from facedancer.images import write_image
    from facedancer.video import probe, read_frames

    info = probe(target_video)
    every = max(1, info.estimated_frames // count)
    rows = []
    for video in (target_video, swapped_video):
        frames = list(read_frames(probe(video), every=every, max_frames=count))
        width = int(round(frames[0].shape[1] * height / frames[0].shape[0]))
        rows.append(np.concatenate([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames], 1))
    width = min(r.shape[1] for r in rows)
    write_image(path, np.concatenate([r[:, :width] for r in rows], 0))
    return path


def _rel(path: Path, base: Path) -> str:
    return html.escape(Path(path).resolve().relative_to(base.resolve()).as_posix())


def _value(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))


def _stage_rows(r: DemoResults) -> str:
    rows = []
    total = sum(seconds for _, seconds, _, _ in r.stages if seconds is not None)
    total_cpu = sum(cpu for _, _, cpu, _ in r.stages if cpu is not None)
    for name, seconds, cpu, output in r.stages:
        label, what = name.replace("demo ", "").split(": ", 1)
        rows.append(
            f"<tr><td>{html.escape(label)}</td><td class=num>{'' if seconds is None else f'{seconds:.1f}'}</td>"
            f"<td class=num>{'' if cpu is None else f'{cpu:.1f}'}</td>"
            f'<td><a href="{_rel(output, r.out)}">{_rel(output, r.out)}</a></td>'
            f"<td>{html.escape(what)}</td></tr>"
        )
    rows.append(
        f"<tr><th>total</th><th class=num>{total:.1f}</th><th class=num>{total_cpu:.1f}</th><td></td><td></td></tr>"
    )
    return "".join(rows)


def _evaluation_rows(summary: dict) -> str:
    from facedancer.evaluation import direction, grouped_metrics

    rows = []
    for group, metrics in grouped_metrics(summary):
        rows.append(f"<tr><th colspan=3>{html.escape(group)}</th></tr>")
        rows += [
            f"<tr><td>{html.escape(n)}</td><td class=num>{v:.4f}</td><td>{direction(h)}</td></tr>"
            for n, v, h in metrics
        ]
    counts = [k for k in ("items", "source_identities") if k in summary]
    rows += [f"<tr><td>{k}</td><td class=num>{summary[k]}</td><td>count</td></tr>" for k in counts]
    return "".join(rows)


def write_report(r: DemoResults, path: Path) -> None:
    o, out = r.options, r.out
    loss_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class=num>{_value(v)}</td></tr>" for k, v in r.losses.items()
    )
    encoder_note = (
        f"the ArcFace file {html.escape(str(r.arcface))}"
        if r.real_arcface
        else "<b>an ArcFace-layout model with random weights</b> (no ArcFace-Res50.h5 was found in "
        "arcface_model/): identity losses and identity scores from it mean nothing"
    )
    budget = (
        f"for exactly {o.steps} steps (--steps)"
        if o.steps
        else f"for a time budget of {o.train_minutes:g} min (--train_minutes)"
    )
    rate = r.steps_done * o.batch_size / max(r.train_loop_seconds, 1e-9)
    curves = "".join(
        f'<figure><img src="{_rel(p, out)}" alt="{html.escape(tag)} curve"></figure>' for tag, p in r.loss_curves
    )
    artefacts = [
        ("raw photos", out / "raw"),
        ("aligned crops", out / "aligned"),
        ("shards", out / "shards"),
        ("training run (options, TensorBoard logs, checkpoints)", r.run_dir),
        ("exported generator", r.exported),
        ("identity encoder", r.arcface),
        ("target video", r.target_video),
        ("swapped video (with the target's audio)", r.swapped_video),
        ("side-by-side video (first frames)", out / "side_by_side.mp4"),
        ("evaluation JSON", r.reports["json"]),
        ("evaluation CSV", r.reports["csv"]),
        ("evaluation chart", r.reports["chart"]),
    ]
    listing = "".join(
        f'<li>{html.escape(name)}: <a href="{_rel(p, out)}">{_rel(p, out)}</a></li>' for name, p in artefacts
    )
    rerun = (
        f"facedancer swap --facedancer_path FaceDancer_config_c_HQ.h5 --arcface_path "
        f"arcface_model/ArcFace-Res50.h5 --target {r.target_video} --swap_source {r.chosen['source']} "
        f"--output swapped_real.mp4"
    )
    judge = "dlib ResNet descriptor (independent)" if r.judge else "not installed (dlib scores left out)"
    text = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>FaceDancer demo report</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;line-height:1.4}}
td,th{{padding:2px 12px;text-align:left}}td.num,th.num{{text-align:right;font-variant-numeric:tabular-nums}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f7f7f7}}
code,pre{{background:#f4f4f4}}pre{{white-space:pre-wrap}}img{{max-width:100%}}
.row{{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}}
.curves{{display:flex;flex-wrap:wrap;gap:8px}}figure{{margin:0}}</style></head><body>
<h1>FaceDancer demo</h1>
<p><b>Read this first:</b> this run trained a generator {budget}: {r.steps_done} step(s) at
{o.image_size}×{o.image_size}, batch {o.batch_size}, on this machine's CPU from {r.align_counts.get("written", 0)}
aligned photos. A few CPU steps cannot make a good face swapper: the swapped faces below are blurry blobs.
What the demo shows is that every stage runs end to end and where its output is.
The identity encoder was {encoder_note}.</p>
<p>To swap with real weights (a published FaceDancer generator and ArcFace-Res50.h5, see README "Model files
you bring"), run:</p><pre>{html.escape(rerun)}</pre>
<h2>Stages</h2>
<p>Wall-clock seconds, and CPU seconds of all threads (which a busy machine does not inflate).</p>
<table><tr><th>stage</th><th class=num>seconds</th><th class=num>CPU s</th><th>output</th><th>what it did</th></tr>
{_stage_rows(r)}</table>
<h2>Training</h2>
<p>{r.steps_done} step(s) in {r.train_loop_seconds:.1f} s, {r.train_loop_cpu_seconds:.1f} CPU s
({rate:.2f} images/s, the first step's tracing included).
Curves read back from the TensorBoard event files; watch them live with
<code>tensorboard --logdir {html.escape(str(r.run_dir / "logs"))}</code>.</p>
<div class=curves>{curves}</div>
<p>Last step's losses:</p><table>{loss_rows}</table>
<p>Columns: target | source | swap | self-reconstruction.</p><img src="training_grid.png" alt="training grid">
<h2>Video swap</h2>
<p>The swapped video keeps the input's frames, rate, size and audio (H.264 + AAC). Beside it: frames spread over
the video, the target on top and its swap below.</p>
<div class=row><video controls preload="auto" width="320" src="{_rel(r.swapped_video, out)}"></video>
<img src="{_rel(r.frame_strip, out)}" alt="frame strip: target above, swap below" style="max-width:620px"></div>
<h2>Evaluation</h2><p>Identity judge: {judge}. Means over the evaluated frames, grouped by unit.</p>
<table><tr><th>metric</th><th class=num>value</th><th>direction</th></tr>{_evaluation_rows(r.summary)}</table>
<img src="{_rel(r.reports["chart"], out)}" alt="evaluation chart">
<h2>Artefacts</h2><ul>{listing}</ul>
</body></html>
"""
    write_text_atomic(path, text)

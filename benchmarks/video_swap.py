"""Video swap throughput at 1280x720 with 1 and 3 faces: ours against a loop that behaves like the
original's script (seek per frame, full-resolution detection, `model.predict` per face, no batching, each
face warped back and blended over the whole frame in float) with the same models.

Ours runs three ways: float32 with the generator graph as stored (`--plain_graph`), float32 with the exact
inference rewrites (the default graph), and bfloat16 with the rewrites (the default precision on CPUs with
AVX512-BF16). Prints median frames/s over interleaved runs, ratios to the baseline, and the PSNR of each
variant's swapped frames (before encoding) against the float32 plain graph's. With the onnx extra installed,
ONNX Runtime float32 and int8 (`--runtime onnxruntime`, exported once and cached in ~/.cache/facedancer/onnx,
int8 calibrated on the aligned sample faces) run too. ONNX Runtime ignores ONEDNN_MAX_CPU_ISA.
With `--detect_every 1 2 3 5`, float32 with the rewrites also runs detecting every N-th frame only (faces
followed by optical flow between: `--detect_every`), labelled "fp32 every N" (the plain "fp32" row uses the
default).
The random generator's instance-norm scales and offsets are drawn around 1 and 0 like a trained model's
(exactly 1 and 0, as initialised, would let TensorFlow fold them away and take a different path).

    python benchmarks/video_swap.py --frames 24
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/video_swap.py --faces 1 --variants fp32 "ort fp32" "ort int8"
    python benchmarks/video_swap.py --faces 1 --variants fp32 --detect_every 1 2 3 5
    python benchmarks/video_swap.py --faces 3 --variants fp32 --no_track      # what tracking costs
    python benchmarks/video_swap.py --generator FaceDancer_config_c_HQ.h5 --arcface arcface_model/ArcFace-Res50.h5
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _variants() -> dict:
    from facedancer.swap import SwapOptions

    return {
        "fp32 plain graph": SwapOptions(precision="float32", rewrite_graph=False),
        "fp32": SwapOptions(precision="float32"),
        "bf16": SwapOptions(precision="bfloat16"),
        "ort fp32": SwapOptions(runtime="onnxruntime", precision="float32"),
        "ort int8": SwapOptions(runtime="onnxruntime", precision="int8"),
    }


VARIANTS = _variants()


def make_video(path: Path, faces: int, frames: int) -> Path:
    import numpy as np
    from photos import photo_dir
    from videos import portrait, write_video

    folder = photo_dir()
    names = ["obama.jpg", "biden.jpg", "obama2.jpg"][:faces]
    width, height = 1280, 720
    base = np.tile(np.linspace(40, 200, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    people = [portrait(folder / n, 560) for n in names]
    out = []
    for i in range(frames):
        frame = base.copy()
        for k, person in enumerate(people):
            x = 40 + k * 420 + (i % 12) * 3
            w = min(person.shape[1], 400, width - x)
            frame[80 : 80 + person.shape[0], x : x + w] = person[:, :w]
        out.append(frame)
    return write_video(path, out, fps=25.0, audio=True)


def blend_whole_frame(total, face, matrix, mask):
    """The original's paste: warp the face (float, [0, 1]) and its mask to full frame size and blend every
    pixel of the float frame `total`."""
    import cv2

    from facedancer.alignment import invert

    height, width = total.shape[:2]
    inverse = invert(matrix)
    face = cv2.warpAffine(face, inverse, (width, height), borderValue=0.0)
    weight = cv2.warpAffine(mask, inverse, (width, height), borderValue=0.0)[..., None]
    return face * weight + total * (1 - weight)


def baseline(generator, detector, video: Path, output: Path, source_z) -> int:
    """The original's way: seek each frame, detect at full size, predict each face alone, blend over the
    whole frame, write with OpenCV."""
    import cv2
    import numpy as np

    from facedancer.alignment import align
    from facedancer.blending import crop_mask

    size = int(generator.inputs[0].shape[1])
    mask = crop_mask(size)
    cap = cv2.VideoCapture(str(video))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = None
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, bgr = cap.read()
        if not ok:
            break
        frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        total = frame / 255.0
        for face in detector.detect(frame, max_side=None):
            crop, matrix = align(frame, face.landmarks, size)
            y = generator.predict([crop[None].astype(np.float32) / 127.5 - 1, source_z[None]], verbose=0)[0]
            total = blend_whole_frame(total, (y + 1) / 2, matrix, mask)
        frame = (np.clip(total, 0, 1) * 255.0).astype(np.uint8)
        if writer is None:
            writer = cv2.VideoWriter(
                str(output), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0])
            )
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    cap.release()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24, help="frames per test video")
    parser.add_argument("--generator", help="generator file (default: a config C generator with random weights)")
    parser.add_argument("--arcface", help="identity encoder (default: ResNet50 ArcFace layout, random weights)")
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (median reported)")
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), help=f"which of ours to run ({', '.join(VARIANTS)})"
    )
    parser.add_argument(
        "--detect_every", type=int, nargs="*", default=[], help="also run float32 detecting every N-th frame only"
    )
    parser.add_argument(
        "--no_track",
        action="store_true",
        help="also run float32 with --no-track (per-frame selection: what identity-aware tracking costs)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import keras
    import numpy as np
    from standins import trained_like_norms
    from train_step import arcface_resnet50
    from videos import decode

    import facedancer
    from facedancer.detection import default_detector
    from facedancer.nn import build_generator, preset
    from facedancer.runtime.providers import cpu_flags
    from facedancer.runtime.select import onnx_available
    from facedancer.swap import FaceSwapper
    from facedancer.swap_video import VideoOptions, swap_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gen_path = Path(args.generator) if args.generator else tmp / "generator.keras"
        if not args.generator:
            keras.utils.set_random_seed(0)  # the same weights every run: the ONNX export cache is reused
            trained_like_norms(build_generator(preset("C"))).save(gen_path)
        arc_path = args.arcface or arcface_resnet50(tmp / "arcface.h5")
        generator = facedancer.load_model(gen_path, kind="generator")
        identity = facedancer.load_model(arc_path, kind="identity")
        detector = default_detector()
        from photos import photo_dir

        source = photo_dir() / "obama3.jpg"
        print(f"video swap, 1280x720, {args.frames} frames, {os.cpu_count()} CPU cores")
        print(f"CPU flags: {' '.join(cpu_flags())}; ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '-')}")
        for faces in args.faces:
            video = make_video(tmp / f"in{faces}.mp4", faces, args.frames)
            wanted = ["fp32 plain graph", *[v for v in args.variants if v != "fp32 plain graph"]]
            if not onnx_available():
                wanted = [v for v in wanted if not v.startswith("ort")]
            options = {name: VARIANTS[name] for name in wanted}
            swappers = {name: FaceSwapper(generator, identity, detector, o) for name, o in options.items()}
            video_options = {name: VideoOptions() for name in swappers}
            if "fp32" in swappers:
                for every in args.detect_every:  # the fp32 swapper, another detection schedule
                    swappers[f"fp32 every {every}"] = swappers["fp32"]
                    video_options[f"fp32 every {every}"] = VideoOptions(detect_every=every)
                if args.no_track:
                    swappers["fp32 no track"] = swappers["fp32"]
                    video_options["fp32 no track"] = VideoOptions(track=False)
            warmup = VideoOptions(length=min(1.0, 8 / args.frames))
            for swapper in {id(s): s for s in swappers.values()}.values():  # each swapper once
                swapper.set_source(source)
                swap_video(swapper, video, tmp / "warmup.mp4", warmup, progress=False)
            source_z = swappers["fp32"].source
            timings: dict[str, list[float]] = {name: [] for name in [*swappers, "baseline"]}
            for _ in range(args.repeats):  # interleaved, so drift in machine load hits every variant alike
                start = time.perf_counter()
                n = baseline(generator, detector, video, tmp / "base.mp4", source_z)
                timings["baseline"].append(n / (time.perf_counter() - start))
                for name, swapper in swappers.items():
                    start = time.perf_counter()
                    stats = swap_video(swapper, video, tmp / "out.mp4", video_options[name], progress=False)
                    timings[name].append(stats["frames"] / (time.perf_counter() - start))
            fps = {name: statistics.median(values) for name, values in timings.items()}
            # quality: the swapped frames themselves (before encoding) against float32 with the stored graph
            frames = decode(video)[:8]
            detected = [swappers["fp32"].detect(f) for f in frames]
            swapped = {
                name: sw.swap_frames(frames, detected)
                for name, sw in swappers.items()
                if "every" not in name and "track" not in name
            }
            line = [f"{faces} face(s): baseline {fps['baseline']:.2f} frames/s"]
            for name in swappers:
                psnr = ""
                if name != "fp32 plain graph" and name in swapped:
                    pairs = zip(swapped["fp32 plain graph"], swapped[name], strict=True)
                    mse = np.mean([np.mean((x.astype(float) - y) ** 2) for x, y in pairs])
                    psnr = f", frames {10 * np.log10(255.0**2 / mse):.1f} dB" if mse else ", identical frames"
                line.append(f"{name} {fps[name]:.2f} ({fps[name] / fps['baseline']:.2f}x{psnr})")
            print("; ".join(line), flush=True)
            runs = "; ".join(f"{k} " + " ".join(f"{v:.2f}" for v in vs) for k, vs in timings.items())
            print(f"   runs (frames/s): {runs}", flush=True)


if __name__ == "__main__":
    main()

"""Video swap throughput at 1280x720 with 1 and 3 faces: ours (fp32 and bf16) against a loop that behaves
like the original's script (seek per frame, full-resolution detection, `model.predict` per face, no batching)
with the same models. Prints frames/s, the ratio to the baseline, and the bf16-vs-fp32 PSNR.

    python benchmarks/video_swap.py --frames 24
    python benchmarks/video_swap.py --generator FaceDancer_config_c_HQ.h5 --arcface arcface_model/ArcFace-Res50.h5
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


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


def baseline(generator, identity, detector, video: Path, output: Path, source_z) -> int:
    """The original's way: seek each frame, detect at full size, predict each face alone, write with OpenCV."""
    import cv2
    import numpy as np

    from facedancer.alignment import align
    from facedancer.blending import crop_mask, paste

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
        for face in detector.detect(frame, max_side=None):
            crop, matrix = align(frame, face.landmarks, size)
            y = generator.predict([crop[None].astype(np.float32) / 127.5 - 1, source_z[None]], verbose=0)[0]
            frame = paste(frame, np.clip((y + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8), matrix, mask)
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import numpy as np
    from train_step import arcface_resnet50
    from videos import decode

    import facedancer
    from facedancer.detection import default_detector
    from facedancer.nn import build_generator, preset
    from facedancer.swap import FaceSwapper, SwapOptions
    from facedancer.swap_video import VideoOptions, swap_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gen_path = Path(args.generator) if args.generator else tmp / "generator.keras"
        if not args.generator:
            build_generator(preset("C")).save(gen_path)
        arc_path = args.arcface or arcface_resnet50(tmp / "arcface.h5")
        generator = facedancer.load_model(gen_path, kind="generator")
        identity = facedancer.load_model(arc_path, kind="identity")
        detector = default_detector()
        from photos import photo_dir

        source = photo_dir() / "obama3.jpg"
        print(f"video swap, 1280x720, {args.frames} frames, {os.cpu_count()} CPU cores")
        for faces in args.faces:
            video = make_video(tmp / f"in{faces}.mp4", faces, args.frames)
            results, outputs = {}, {}
            for precision in ("float32", "bfloat16"):
                swapper = FaceSwapper(generator, identity, detector, SwapOptions(precision=precision, batch_size=8))
                swapper.set_source(source)
                out = tmp / f"out{faces}_{precision}.mp4"
                swap_video(swapper, video, tmp / "warmup.mp4", VideoOptions(length=8 / args.frames), progress=False)
                start = time.perf_counter()
                stats = swap_video(swapper, video, out, VideoOptions(), progress=False)
                results[precision] = stats["frames"] / (time.perf_counter() - start)
                outputs[precision] = out
            z = swapper.source
            start = time.perf_counter()
            n = baseline(generator, identity, detector, video, tmp / f"base{faces}.mp4", z)
            base_fps = n / (time.perf_counter() - start)
            a, b = decode(outputs["float32"]), decode(outputs["bfloat16"])
            mse = np.mean([np.mean((x.astype(float) - y) ** 2) for x, y in zip(a, b, strict=True)])
            psnr = 10 * np.log10(255.0**2 / mse) if mse else float("inf")
            print(
                f"{faces} face(s): baseline {base_fps:.2f} frames/s; ours fp32 {results['float32']:.2f} "
                f"({results['float32'] / base_fps:.2f}x), bf16 {results['bfloat16']:.2f} "
                f"({results['bfloat16'] / base_fps:.2f}x); bf16 vs fp32 frames PSNR {psnr:.1f} dB",
                flush=True,
            )


if __name__ == "__main__":
    main()

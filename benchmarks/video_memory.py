"""Memory over a long video: swap a synthetic stream (default 10 000 frames, 320x240, ffmpeg's test pattern
with a real face photo moving over it) and sample the process's resident memory every 500 frames; the
decode, detection and encode queues are bounded, so memory must stay flat after warm-up.

    python benchmarks/video_memory.py --frames 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_stream(path: Path, frames: int) -> Path:
    """A face photo sliding over a moving test pattern, encoded by ffmpeg itself (nothing held in memory)."""
    import subprocess

    from photos import photo_dir

    from facedancer.video import ffmpeg_exe

    face = photo_dir() / "obama.jpg"
    graph = "[1:v]scale=-2:200[face];[0:v][face]overlay=x='40+60*sin(t)':y=20"
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
         "-loop", "1", "-i", str(face), "-filter_complex", graph, "-frames:v", str(frames),
         "-c:v", "libx264", "-preset", "ultrafast", str(path)],
        check=True,
    )  # fmt: skip
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000)
    args = parser.parse_args()

    from photos import photo_dir
    from standins import pixel_identity_encoder

    from facedancer.detection import RetinaFaceDetector
    from facedancer.images import read_image
    from facedancer.nn import GeneratorConfig, build_generator
    from facedancer.swap import FaceSwapper
    from facedancer.swap_video import VideoOptions, swap_video

    work = Path(tempfile.mkdtemp())
    video = make_stream(work / "long.mp4", args.frames)
    generator = build_generator(GeneratorConfig(image_size=64, mapping_depth=1, mapping_size=64))
    swapper = FaceSwapper(generator, pixel_identity_encoder(), RetinaFaceDetector())
    swapper.set_source(read_image(photo_dir() / "biden.jpg"))
    samples, done = [], threading.Event()

    def sample():
        while not done.wait(2.0):
            samples.append((time.monotonic(), rss_mib()))

    thread = threading.Thread(target=sample, daemon=True)
    start = time.monotonic()
    thread.start()
    stats = swap_video(swapper, video, work / "out.mp4", VideoOptions(), progress=False)
    done.set()
    thread.join()
    seconds = time.monotonic() - start
    warm = [m for t, m in samples if t - start > 0.1 * seconds] or [m for _, m in samples]
    print(f"{stats['frames']} frames in {seconds:.0f} s; resident memory after warm-up: "
          f"min {min(warm):.0f} MiB, max {max(warm):.0f} MiB, last {warm[-1]:.0f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

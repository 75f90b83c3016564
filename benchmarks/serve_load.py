"""Load on `facedancer serve` over loopback: image requests from several clients while video jobs run.

Starts the real command (`python -m facedancer.cli.main serve`) as a subprocess on a free 127.0.0.1 port,
then, for each of `--rounds` rounds: `--requests` POST /v1/swap from `--clients` threads (every answer
checked against the single-request answer) while `--videos` video jobs run (every result checked for its
frame count and sound). Prints requests/s, p50/p95 latency, video job time, and the server's resident memory
(after warm-up, peak, end of each round; flat memory = no growth from round to round). Exit code 1 when a
request was lost or a result was wrong.

Without --generator / --arcface it builds config C with random weights (the real cost per face) and the
small random ArcFace layout, writes them to a temporary folder, and serves those.

    python benchmarks/serve_load.py                                 # 50 requests, 8 clients, 3 videos, 2 rounds
    python benchmarks/serve_load.py --generator FaceDancer_config_c_HQ.h5 --arcface arcface_model/ArcFace-Res50.h5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def build_models(folder: Path) -> tuple[Path, Path]:
    from standins import save_arcface_standin, trained_like_norms

    from facedancer.nn import build_generator, preset

    generator = folder / "generator.keras"
    trained_like_norms(build_generator(preset("C"))).save(generator)
    return generator, save_arcface_standin(folder / "ArcFace-Res50.h5")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class MemoryWatch:
    """Samples a process's resident memory every 0.1 s in a thread."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def inputs(folder: Path) -> dict:
    from photos import photo_dir
    from PIL import Image
    from videos import moving_face_frames, write_video

    from facedancer.images import read_image
    from facedancer.samples import portrait

    photos = photo_dir()

    def jpeg(name, height):
        buffer = io.BytesIO()
        Image.fromarray(portrait(read_image(photos / name), height)).save(buffer, format="JPEG", quality=92)
        return buffer.getvalue()

    video = write_video(folder / "clip.mp4", moving_face_frames(photos / "obama.jpg", 24, (320, 240)))
    return {"target": jpeg("obama.jpg", 480), "source": jpeg("biden.jpg", 480), "video": video}


def decode(data: bytes):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def one_round(url: str, data: dict, expected, args, pid: int) -> dict:
    import httpx

    local = threading.local()
    latencies, failures = [], []
    lock = threading.Lock()

    def request(_):
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=600)
        start = time.perf_counter()
        response = local.client.post(
            "/v1/swap", files=[("target", ("t.jpg", data["target"])), ("source", ("s.jpg", data["source"]))]
        )
        elapsed = time.perf_counter() - start
        with lock:
            if response.status_code != 200:
                failures.append(f"status {response.status_code}: {response.text[:200]}")
            elif abs(decode(response.content) - expected).max() > 1:
                failures.append("an image differs from the single-request answer")
            else:
                latencies.append(elapsed)

    watch = MemoryWatch(pid)
    client = httpx.Client(base_url=url, timeout=600)
    sent = [("target", ("v.mp4", data["video"].read_bytes())), ("source", ("s.jpg", data["source"]))]
    jobs = []
    for _ in range(args.videos):
        response = client.post("/v1/jobs", files=sent)
        if response.status_code != 202:
            failures.append(f"video job refused: {response.status_code} {response.text[:200]}")
        else:
            jobs.append(response.json()["id"])
    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(request, range(args.requests)))
    images_wall = time.perf_counter() - start
    video_times = []
    for job_id in jobs:
        while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
            time.sleep(0.2)
        video_times.append(job["finished"] - job["created"])  # server side: submitted to finished
        if job["state"] != "done":
            failures.append(f"video job {job['state']}: {job['error']}")
            continue
        result = client.get(f"/v1/jobs/{job_id}/result")
        out = Path(tempfile.mkstemp(suffix=".mp4")[1])
        out.write_bytes(result.content)
        from videos import stream_info

        info = stream_info(out)
        out.unlink()
        if info["frames"] != 24 or info["audio_codec"] is None:
            failures.append(f"video result has {info['frames']} frames, audio {info['audio_codec']}")
    peak = watch.stop()
    ordered = sorted(latencies)
    return {
        "requests_ok": len(latencies),
        "requests_per_s": len(latencies) / images_wall if images_wall else 0.0,
        "p50_s": statistics.median(ordered) if ordered else None,
        "p95_s": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else None,
        "video_jobs_s": video_times,
        "rss_peak_mb": peak,
        "rss_end_mb": rss_mb(pid),
        "failures": failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", help="generator file (default: config C with random weights)")
    parser.add_argument("--arcface", help="identity encoder file (default: the small random ArcFace layout)")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="the server's --workers (video jobs at once)")
    parser.add_argument("--image_workers", type=int, default=2, help="the server's --image_workers")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generator, arcface = (Path(args.generator), Path(args.arcface)) if args.generator else build_models(tmp)
        data = inputs(tmp)
        port = free_port()
        command = [sys.executable, "-m", "facedancer.cli.main", "serve", "--facedancer_path", str(generator)]
        command += ["--arcface_path", str(arcface), "--port", str(port), "--workers", str(args.workers)]
        command += ["--image_workers", str(args.image_workers), "--max_queue", str(max(8, args.videos))]
        command += ["--max_image_waiting", str(max(32, args.requests))]
        server = subprocess.Popen(command, cwd=REPO)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.5)
            with httpx.Client(base_url=url, timeout=600) as client:  # warm-up: traces the functions once
                files = [("target", ("t.jpg", data["target"])), ("source", ("s.jpg", data["source"]))]
                for _ in range(2):
                    first = client.post("/v1/swap", files=files)
                assert first.status_code == 200, first.text
                expected = decode(first.content)
                job = client.post(
                    "/v1/jobs", files=[("target", ("v.mp4", data["video"].read_bytes()))] + files[1:]
                ).json()
                while client.get(f"/v1/jobs/{job['id']}").json()["state"] in ("queued", "running"):
                    time.sleep(0.2)
            warm = rss_mb(server.pid)
            rounds = [one_round(url, data, expected, args, server.pid) for _ in range(args.rounds)]
        finally:
            server.terminate()
            server.wait(timeout=60)
    lost = sum(len(r["failures"]) for r in rounds)
    print(
        f"{args.requests} image requests from {args.clients} clients with {args.videos} video jobs (24 frames, 320x240)"
    )
    print(f"server memory after warm-up: {warm:.0f} MB")
    for i, r in enumerate(rounds, 1):
        videos = ", ".join(f"{t:.1f}" for t in r["video_jobs_s"])
        print(
            f"round {i}: {r['requests_ok']}/{args.requests} ok, {r['requests_per_s']:.2f} req/s, "
            f"p50 {r['p50_s'] or float('nan'):.2f} s, p95 {r['p95_s'] or float('nan'):.2f} s; "
            f"video jobs took {videos} s (queued + run); "
            f"memory peak {r['rss_peak_mb']:.0f} MB, end {r['rss_end_mb']:.0f} MB"
        )
        for failure in r["failures"][:5]:
            print("  FAILED:", failure)
    if args.json:
        Path(args.json).write_text(json.dumps({"warm_rss_mb": warm, "rounds": rounds}, indent=2))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

"""`facedancer prepare` (Apache Beam) throughput: images/s with the DirectRunner on 1 and 2 worker processes vs
`crop_align` + `shard` in one process, and the projected wall time for 3.3 M photos (VGGFace2) on N workers.

Each pipeline run pays a fixed start-up (worker processes importing TensorFlow and loading the detector), so
every configuration runs twice, on a small and a large tree, and the marginal rate (extra images / extra
seconds) is what scales to millions of photos. The workers' CPU seconds per photo (from the reaped worker
processes) are printed too: unlike wall time, they hold up when other jobs share the machine.
Photos: real portraits at 640x480 (benchmarks/crop_align.py).

    python benchmarks/prepare.py                   # 48 images (and 8 for the start-up), 1 and 2 workers
    python benchmarks/prepare.py --images 96 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VGGFACE2_PHOTOS = 3_300_000


def one_machine(data: Path, out: Path, detector) -> float:
    """Seconds for align_dataset then write_shards (the detector already loaded, as a long run amortises it)."""
    from facedancer.align_dataset import AlignOptions, align_dataset
    from facedancer.shards import ShardOptions, write_shards

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    align_dataset(data, out / "aligned", AlignOptions(min_size=32), detector=detector, progress=False)
    write_shards(out / "aligned", out / "shards", ShardOptions(data_name="bench"), progress=False)
    return time.perf_counter() - start


def children_cpu() -> float:
    """CPU seconds of finished child processes (the DirectRunner's workers, once it has reaped them)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pipeline(data: Path, out: Path, workers: int) -> tuple[float, float]:
    """(wall seconds, workers' CPU seconds) of one `prepare` run with the DirectRunner on `workers` processes."""
    from facedancer.align_dataset import AlignOptions
    from facedancer.prepare import PrepareOptions, prepare
    from facedancer.shards import ShardOptions

    shutil.rmtree(out, ignore_errors=True)
    args = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    options = PrepareOptions(AlignOptions(min_size=32), ShardOptions(data_name="bench"))
    start, cpu = time.perf_counter(), children_cpu()
    result = prepare(data, out, options, args)
    elapsed = time.perf_counter() - start
    assert result.counters.get("faces") == len(list(data.rglob("*.jpg"))), result.counters
    return elapsed, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="photos in the large tree (48)")
    parser.add_argument("--small", type=int, default=8, help="photos in the small tree, for the start-up cost (8)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker processes to try (1 2)")
    parser.add_argument(
        "--project", type=int, nargs="+", default=[1, 8, 32, 128, 512], help="worker counts for the 3.3 M projection"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from crop_align import make_tree

    from facedancer.detection import default_detector

    detector = default_detector()
    cores = os.cpu_count()
    print(f"prepare benchmark: 640x480 photos, {args.small} and {args.images} per run, {cores} cores")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for count in (args.small, args.images):
            trees[count] = Path(tmp) / f"data{count}"
            make_tree(trees[count], (640, 480), count)
        out = Path(tmp) / "out"
        one_machine(trees[args.small], out, detector)  # warm-up
        base = {n: one_machine(trees[n], out, detector) for n in trees}
        base_rate = (args.images - args.small) / (base[args.images] - base[args.small])
        print(
            f"crop_align + shard, 1 process: {args.images / base[args.images]:.1f} images/s (marginal {base_rate:.1f})"
        )
        rates, cpu_per_photo = {}, {}
        for workers in args.workers:
            runs = {n: pipeline(trees[n], out, workers) for n in trees}
            times = {n: wall for n, (wall, _) in runs.items()}
            rates[workers] = (args.images - args.small) / (times[args.images] - times[args.small])
            startup = times[args.small] - args.small / rates[workers]
            cpu_per_photo[workers] = (runs[args.images][1] - runs[args.small][1]) / (args.images - args.small)
            cpu_startup = (runs[args.small][1] - args.small * cpu_per_photo[workers]) / workers
            print(
                f"prepare, DirectRunner, {workers} worker(s): {args.images / times[args.images]:.1f} images/s with "
                f"start-up; marginal {rates[workers]:.1f} images/s; start-up ≈ {startup:.0f} s; worker CPU "
                f"{cpu_per_photo[workers] * 1000:.0f} ms per photo, {cpu_startup:.1f} CPU-s start-up per process"
            )
    first = min(rates)
    print(f"crop_align + shard on one machine like this one, 3.3 M photos: {VGGFACE2_PHOTOS / base_rate / 3600:.1f} h")
    if min(rates.values()) <= 0:
        print("wall-clock marginal rates are noise (the small run took longer than the large): machine too busy")
    else:
        for workers in rates:
            if workers != first:
                print(f"scaling {first} -> {workers} workers: {rates[workers] / rates[first]:.2f}x")
        others = [rates[w] / rates[first] / (w / first) for w in rates if w != first]
        efficiency = min([1.0, *others])
        per_worker = rates[first] / first
        print(
            f"projection for {VGGFACE2_PHOTOS / 1e6:.1f} M photos at {per_worker:.1f} images/s per worker "
            f"(one worker = one process on one core here), scaling efficiency {efficiency:.2f}:"
        )
        for n in args.project:
            rate = per_worker * n * (efficiency if n > first else 1.0)
            print(f"  {n:4d} workers: {VGGFACE2_PHOTOS / rate / 3600:7.2f} h")
    # Wall-clock rates fall with other load on the machine; CPU seconds per photo do not (much).
    cpu = cpu_per_photo[first]
    print(f"projection from worker CPU time ({cpu * 1000:.0f} ms per photo; one worker = one busy core):")
    for n in args.project:
        print(f"  {n:4d} workers: {VGGFACE2_PHOTOS * cpu / n / 3600:7.2f} h")


if __name__ == "__main__":
    main()

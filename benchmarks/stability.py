"""Temporal stability of video swapping on clips made from the sample photos: two and three people crossing
(one hiding another for a while, one entering and leaving), without and with camera shake.

Reports, with landmark smoothing off and on, the median over `--seeds` (each seed draws other shake):
- jitter: frame-to-frame motion of each person's pasted landmarks after removing the true motion (the known
  placement of the person in the frame, shake included: the paste must follow it), mean pixels per landmark
  per frame, and smoothed / unsmoothed;
- offset: mean distance of the pasted landmarks from where they belong on the true face (each person's median
  unsmoothed offset from its true placement), pixels: a smoother that lags the true motion shows here;
- person switches: the share of frames in which someone other than the chosen person is selected, for
  `--select reference` (reference photo: another photo of the chosen person) and `--select largest`, with
  tracking (default; worst seed) and `--no-track` (per-frame decisions; first seed, smoothing on, since each
  costs a descriptor per face per frame);
- identity cost: descriptors computed per frame by the tracker;
- with `--detect_every`: jitter, switches, the mean (max) distance of the pasted landmarks from the frame's own
  detection, and detector calls per frame when the detector runs on every N-th frame
  only and faces are followed by optical flow in between (facedancer.flow), tracked, smoothing on (first seed).

Only detection, tracking and selection run (the generator does not change which face is pasted where).

    python benchmarks/stability.py --frames 48 --detect_every 1 2 3 5
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def clips(frames: int, shake: float, seed: int = 1):
    """(name, frames, truth, walks, chosen person index) for two- and three-person crossings."""
    import tempfile

    from photos import astronaut, photo_dir
    from videos import Walk, scene_frames

    from facedancer.images import write_image

    folder = photo_dir()
    third = Path(tempfile.mkdtemp()) / "astronaut.png"
    write_image(third, astronaut())
    width, height = 640, 360
    side = int(0.55 * height)
    two = [
        Walk(folder / "obama.jpg", 10, 620 - int(1.1 * side), 40, int(1.1 * side)),
        Walk(folder / "biden.jpg", 620 - side, 10, 60, side),
    ]
    three = [*two, Walk(third, width - side - 5, width - side - 30, 130, side, frames=(frames // 4, 3 * frames // 4))]
    out = []
    for name, walks in (("2 people crossing", two), ("3 people, one entering and leaving", three)):
        video, truth = scene_frames(walks, frames, (width, height), shake=shake, seed=seed)
        out.append((name, video, truth, walks, 0))
    return out


def person_of(face, truth_row, walks):
    """The person whose head centre is nearest the face's box centre."""
    import numpy as np

    centre = (face.box[:2] + face.box[2:]) / 2
    best, distance = None, 1e9
    for k, (where, walk) in enumerate(zip(truth_row, walks, strict=True)):
        if where is None:
            continue
        d = float(np.linalg.norm(centre - (np.array(where) + walk.height / 2)))
        if d < distance:
            best, distance = k, d
    return best


def residuals(tracked_rows, truth, walks) -> list[dict]:
    """Per frame, each person's landmarks minus their true placement (what the true motion does not explain)."""
    import numpy as np

    out = []
    for row, where in zip(tracked_rows, truth, strict=True):
        current = {}
        for face in row:
            k = person_of(face, where, walks)
            if k is not None:
                current[k] = face.landmarks - np.array(where[k])
        out.append(current)
    return out


def jitter(tracked_rows, truth, walks) -> float:
    """Mean frame-to-frame change of (landmarks - true placement), per person, over consecutive detections."""
    import numpy as np

    rows = residuals(tracked_rows, truth, walks)
    steps = [
        float(np.abs(now[k] - before[k]).mean())
        for before, now in zip(rows, rows[1:], strict=False)
        for k in now
        if k in before
    ]
    return float(np.mean(steps)) if steps else float("nan")


def true_offsets(raw_rows, truth, walks) -> dict:
    """Where each person's landmarks sit on their head: the median unsmoothed offset from the true placement."""
    import numpy as np

    seen: dict[int, list] = {}
    for row in residuals(raw_rows, truth, walks):
        for k, r in row.items():
            seen.setdefault(k, []).append(r)
    return {k: np.median(v, axis=0) for k, v in seen.items()}


def offset(tracked_rows, truth, walks, centre: dict) -> float:
    """Mean distance (pixels) of the landmarks from where they belong on the true face."""
    import numpy as np

    gaps = [
        float(np.linalg.norm(r - centre[k], axis=1).mean())
        for row in residuals(tracked_rows, truth, walks)
        for k, r in row.items()
        if k in centre
    ]
    return float(np.mean(gaps)) if gaps else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument(
        "--shake", type=float, nargs="+", default=[0.0, 1.5], help="camera shake, pixels (standard deviation)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="shake draws; medians over them")
    parser.add_argument("--smoothing", type=float, default=0.7)
    parser.add_argument("--detect_every", type=int, nargs="*", default=[], help="also run these N (1 = every frame)")
    args = parser.parse_args()

    import numpy as np
    from photos import photo_dir

    from facedancer.detection import RetinaFaceDetector
    from facedancer.flow import FaceFollower
    from facedancer.images import read_image
    from facedancer.selection import DlibDescriptor, TrackSelection, identity_check
    from facedancer.tracking import FaceTracker, LandmarkSmoother

    detector, descriptor = RetinaFaceDetector(), DlibDescriptor()
    reference_image = read_image(photo_dir() / "obama2.jpg")
    reference = descriptor.describe(reference_image, detector.detect(reference_image)[:1])[0]

    def tracked(frames, detections, truth, walks, chosen, smoothing):
        """Rows of tracked faces (reference selection), switch shares and descriptors per frame."""
        results = {}
        for mode in ("reference", "largest"):
            tracker = FaceTracker(smoothing, identity=identity_check(descriptor, 0.6))
            selection = TrackSelection(mode, 24, reference, descriptor.distance, 0.6)
            rows, wrong = [], 0
            for frame, faces, where in zip(frames, detections, truth, strict=True):
                faces_now = tracker.update(frame, faces)
                rows.append([t.face for t in faces_now])
                picked = selection(faces_now, tracker.tracks)
                wrong += any(person_of(f, where, walks) != chosen for f in picked)
            results[mode] = (rows, wrong / len(frames), tracker.descriptors_computed / len(frames))
        return results

    def per_frame(frames, detections, truth, walks, chosen, smoothing):
        """Switch shares with --no-track: selection decided in each frame on its own."""
        smoother, wrong = LandmarkSmoother(smoothing), {"reference": 0, "largest": 0}
        for frame, faces, where in zip(frames, detections, truth, strict=True):
            big = [f for f in smoother(faces, frame) if f.size >= 24]
            vectors = descriptor.describe(frame, big)
            ref = [f for f, v in zip(big, vectors, strict=True) if descriptor.distance(v, reference) <= 0.6]
            wrong["reference"] += any(person_of(f, where, walks) != chosen for f in ref)
            wrong["largest"] += any(person_of(f, where, walks) != chosen for f in big[:1])
        return {k: v / len(frames) for k, v in wrong.items()}

    def every_nth(name, frames, detections, truth, walks, chosen, every):
        """One --detect_every run on a clip: the detector answers from `detections` and counts its calls."""
        # the detector is the one above; its results for each frame were computed once
        index = {id(f): i for i, f in enumerate(frames)}
        calls = [0]

        def detect(frame, index=index, detections=detections, calls=calls):
            calls[0] += 1
            return detections[index[id(frame)]]

        tracker = FaceTracker(args.smoothing, identity=identity_check(descriptor, 0.6))
        follower = FaceFollower(detect, tracker, every)
        selection = TrackSelection("reference", 24, reference, descriptor.distance, 0.6)
        rows, wrong = [], 0
        for frame, where in zip(frames, truth, strict=True):
            followed = follower(frame)
            rows.append([t.face for t in followed])
            wrong += any(person_of(f, where, walks) != chosen for f in selection(followed, tracker.tracks))
        # how far the pasted landmarks are from this frame's own detection of the same face (nearest one)
        offsets = [
            min(float(np.abs(face.landmarks - d.landmarks).mean()) for d in found)
            for row, found in zip(rows, detections, strict=True)
            for face in row
            if found
        ]
        print(
            f"{name:38s} detect_every {every}: jitter {jitter(rows, truth, walks):.3f} px, "
            f"from per-frame detection {np.mean(offsets):.2f} px (max {np.max(offsets):.1f}), "
            f"switches {wrong / len(frames):5.1%}, detector calls/frame {calls[0] / len(frames):.2f} "
            f"(lost {follower.lost}, cuts {follower.cuts})"
        )

    print(
        f"{'clip':36s} {'shake':>5s} {'smoothing':>9s} {'jitter px':>9s} {'ratio':>5s} {'offset px':>9s}  "
        f"switches tracked ref / largest, per frame ref / largest  {'desc/frame':>10s}"
    )
    for shake in args.shake:
        stats: dict = {}
        for seed in args.seeds:
            for name, frames, truth, walks, chosen in clips(args.frames, shake, seed):
                detections = [detector.detect(f, score=0.9) for f in frames]
                base = None
                for smoothing in (0.0, args.smoothing):
                    results = tracked(frames, detections, truth, walks, chosen, smoothing)
                    rows = results["reference"][0]
                    if smoothing == 0.0:
                        centre = true_offsets(rows, truth, walks)
                    value = jitter(rows, truth, walks)
                    base = value if base is None else base
                    entry = stats.setdefault(
                        (name, smoothing), {"jitter": [], "ratio": [], "offset": [], "tracked": [], "desc": []}
                    )
                    entry["jitter"].append(value)
                    entry["ratio"].append(value / base)
                    entry["offset"].append(offset(rows, truth, walks, centre))
                    entry["tracked"].append((results["reference"][1], results["largest"][1]))
                    entry["desc"].append(results["reference"][2])
                    if seed == args.seeds[0] and smoothing == args.smoothing:
                        stats[(name, "per frame")] = per_frame(frames, detections, truth, walks, chosen, smoothing)
                if seed == args.seeds[0]:
                    for every in args.detect_every:
                        every_nth(name, frames, detections, truth, walks, chosen, every)
        for (name, smoothing), entry in stats.items():
            if smoothing == "per frame":
                continue
            worst = np.max(entry["tracked"], axis=0)
            frame_wise = stats[(name, "per frame")]
            print(
                f"{name:36s} {shake:5.1f} {smoothing:9.2f} {np.median(entry['jitter']):9.3f} "
                f"{np.median(entry['ratio']):5.2f} {np.median(entry['offset']):9.3f}  "
                f"tracked {worst[0]:5.1%} / {worst[1]:5.1%}, per frame {frame_wise['reference']:5.1%} / "
                f"{frame_wise['largest']:5.1%}  {np.mean(entry['desc']):10.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

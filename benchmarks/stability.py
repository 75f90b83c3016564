"""Temporal stability of video swapping on clips made from the sample photos: two and three people crossing
(one hiding another for a while, one entering and leaving), with camera shake.

Reports, with landmark smoothing off and on:
- jitter: frame-to-frame motion of each person's pasted landmarks after removing the true motion (the known
  placement of the person in the frame, shake included), mean pixels per landmark per frame;
- person switches: the share of frames in which someone other than the chosen person is selected, for
  `--select reference` (reference photo: another photo of the chosen person) and `--select largest`, with
  tracking (default) and `--no-track` (per-frame decisions);
- identity cost: descriptors computed per frame by the tracker;
- with `--detect_every`: jitter, switches, the mean (max) distance of the pasted landmarks from the frame's own
  detection, and detector calls per frame when the detector runs on every N-th frame
  only and faces are followed by optical flow in between (facedancer.flow), tracked, smoothing on.

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


def clips(frames: int, shake: float):
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
        video, truth = scene_frames(walks, frames, (width, height), shake=shake, seed=1)
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


def jitter(tracked_rows, truth, walks) -> float:
    """Mean frame-to-frame change of (landmarks - true placement), per person, over consecutive detections."""
    import numpy as np

    steps, previous = [], {}
    for row, where in zip(tracked_rows, truth, strict=True):
        current = {}
        for face in row:
            k = person_of(face, where, walks)
            if k is None:
                continue
            residual = face.landmarks - np.array(where[k])
            if k in previous:
                steps.append(float(np.abs(residual - previous[k]).mean()))
            current[k] = residual
        previous = current
    return float(np.mean(steps)) if steps else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--shake", type=float, default=1.5, help="camera shake, pixels (standard deviation)")
    parser.add_argument("--smoothing", type=float, default=0.6)
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
    print(f"{'clip':38s} {'smoothing':>9s} {'jitter px':>9s}  switches: reference / largest  {'desc/frame':>10s}")
    for name, frames, truth, walks, chosen in clips(args.frames, args.shake):
        detections = [detector.detect(f, score=0.9) for f in frames]
        for smoothing in (0.0, args.smoothing):
            # tracked (default)
            results = {}
            for mode in ("reference", "largest"):
                tracker = FaceTracker(smoothing, identity=identity_check(descriptor, 0.6))
                selection = TrackSelection(mode, 24, reference, descriptor.distance, 0.6)
                rows, wrong = [], 0
                for frame, faces, where in zip(frames, detections, truth, strict=True):
                    tracked = tracker.update(frame, faces)
                    rows.append([t.face for t in tracked])
                    picked = selection(tracked, tracker.tracks)
                    wrong += any(person_of(f, where, walks) != chosen for f in picked)
                results[mode] = (rows, wrong / len(frames), tracker.descriptors_computed / len(frames))
            # per frame (--no-track)
            smoother = LandmarkSmoother(smoothing)
            per_frame = {"reference": 0, "largest": 0}
            for frame, faces, where in zip(frames, detections, truth, strict=True):
                smoothed = smoother(faces, frame)
                big = [f for f in smoothed if f.size >= 24]
                vectors = descriptor.describe(frame, big)
                ref = [f for f, v in zip(big, vectors, strict=True) if descriptor.distance(v, reference) <= 0.6]
                per_frame["reference"] += any(person_of(f, where, walks) != chosen for f in ref)
                per_frame["largest"] += any(person_of(f, where, walks) != chosen for f in big[:1])
            rows = results["reference"][0]
            print(
                f"{name:38s} {smoothing:9.2f} {jitter(rows, truth, walks):9.3f}  "
                f"tracked {results['reference'][1]:5.1%} / {results['largest'][1]:5.1%}, "
                f"per frame {per_frame['reference'] / len(frames):5.1%} / {per_frame['largest'] / len(frames):5.1%}"
                f"  {results['reference'][2]:10.2f}"
            )
        for every in args.detect_every:
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
                tracked = follower(frame)
                rows.append([t.face for t in tracked])
                wrong += any(person_of(f, where, walks) != chosen for f in selection(tracked, tracker.tracks))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Swapping faces through a whole video: decode ► detect (every N-th frame; optical flow between) ► track
(smooth) ► select ► batched generator ► encode ► mux audio."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from facedancer.atomic import atomic_path
from facedancer.background import ahead
from facedancer.errors import FaceDancerError
from facedancer.tracking import LandmarkSmoother
from facedancer.video import PARTIAL_HINT, FrameWriter, VideoError, frames_ahead, mux_audio, probe, read_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoOptions:
    sample_rate: int = 1
    length: float = 1.0
    compare: bool = False
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    smoothing: float = 0.7  # benchmarks/stability.py: least offset from the true face, jitter 0.29-0.32x raw
    frames_per_batch: int = 8
    track: bool = True  # identity-aware tracks: selection and smoothing follow people, not boxes
    allow_partial: bool = False  # a truncated or damaged input: swap the frames that decode, warn, succeed
    detect_every: int = 3  # detect on every N-th frame, follow faces by optical flow between (facedancer.flow)

    def __post_init__(self):
        if self.sample_rate < 1:
            raise FaceDancerError(f"--sample_rate must be at least 1, got {self.sample_rate}")
        if not 0.0 < self.length <= 1.0:
            raise FaceDancerError(f"--length is a fraction of the video in (0, 1], got {self.length}")
        if self.detect_every < 1:
            raise FaceDancerError(f"--detect_every must be at least 1 (1: every frame), got {self.detect_every}")


def check_output(output: str | Path) -> None:
    """Fail before any work when the output cannot be written: a missing or read-only folder."""
    output = Path(output)
    folder = output.parent
    if not folder.is_dir():
        raise FaceDancerError(f"output folder {folder} does not exist; create it or choose another --output")
    probe_file = folder / f".{output.stem}.write-test-{os.getpid()}"
    try:
        probe_file.touch()
        probe_file.unlink()
    except OSError as exc:
        raise FaceDancerError(f"cannot write to {folder} ({exc.strerror}); choose another --output") from exc


def clean_stale_temps(output: str | Path) -> list[Path]:
    """Remove temporary files a killed earlier run left beside `output` (their process is gone)."""
    output = Path(output)
    pattern = re.compile(rf"^\.{re.escape(output.stem)}\.tmp-(\d+)(\.video)?{re.escape(output.suffix)}$")
    removed = []
    for path in sorted(output.parent.glob(f".{output.stem}.tmp-*")):
        match = pattern.match(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
            log.info("removed %s, left by an interrupted run", path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of an earlier process that had our number
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def swap_video(
    swapper, source: str | Path, output: str | Path, options: VideoOptions | None = None, progress: bool = True
) -> dict:
    """Write `output` with the source identity on the selected faces of every frame; returns counts."""
    import numpy as np

    from facedancer.progress import bar as progress_bar

    options = options or VideoOptions()
    output = Path(output)
    check_output(output)
    clean_stale_temps(output)
    info = probe(source, allow_partial=options.allow_partial)
    total = info.expected_frames
    max_frames = None if options.length >= 1.0 else max(1, int(total * options.length / options.sample_rate))
    expected = max_frames or -(-total // options.sample_rate)
    depth = frames_ahead(info, options.frames_per_batch)  # frames held per queue: fewer for 4K
    find_faces, tracker, follower = _face_finder(swapper, options)
    stats = {"frames": 0, "faces_swapped": 0, "frames_with_faces": 0}
    width = info.width * 2 if options.compare else info.width
    with atomic_path(output) as final_tmp:
        video_tmp = final_tmp.with_name(f"{final_tmp.stem}.video{output.suffix}")
        try:
            with FrameWriter(
                video_tmp,
                width,
                info.height,
                info.fps / options.sample_rate,
                options.codec,
                options.crf,
                options.preset,
                buffer=depth,
            ) as writer:
                bar = progress_bar(total=expected, unit="frame", desc="swapping", enabled=progress)
                pending: list = []

                def flush():
                    frames = [f for f, _ in pending]
                    swapped = swapper.swap_frames(frames, [faces for _, faces in pending])
                    for frame, out in zip(frames, swapped, strict=True):
                        writer.write(np.concatenate([frame, out], axis=1) if options.compare else out)
                    bar.update(len(pending))
                    pending.clear()

                damage = [info.damage] if info.damage else []
                on_damage = damage.append if options.allow_partial else None
                frames = read_frames(
                    info, every=options.sample_rate, max_frames=max_frames, buffer=depth, on_damage=on_damage
                )
                # Detection of the next frames overlaps the generator's work on the current batch.
                detected = ahead(frames, lambda frame: (frame, find_faces(frame)), depth=depth)
                for frame, faces in detected:
                    stats["frames"] += 1
                    stats["faces_swapped"] += len(faces)
                    stats["frames_with_faces"] += bool(faces)
                    pending.append((frame, faces))
                    if len(pending) >= depth:
                        flush()
                if pending:
                    flush()
                bar.close()
                if stats["frames"] == 0:
                    raise VideoError(f"{info.path}: the video has no frames")
                short = not info.variable_rate and stats["frames"] < expected
                if short and max_frames is None and not options.allow_partial:
                    raise VideoError(
                        f"{info.path}: only {stats['frames']} of its {expected} frames could be decoded "
                        f"(a damaged file); {PARTIAL_HINT}"
                    )
                partial = options.allow_partial and bool(damage or short)
            if info.audio_codec:
                seconds = stats["frames"] * options.sample_rate / info.fps if partial else None
                mux_audio(video_tmp, info, final_tmp, trim_to_video=options.length < 1.0, seconds=seconds)
            else:
                os.replace(video_tmp, final_tmp)
        finally:
            video_tmp.unlink(missing_ok=True)
    if partial:
        stats["expected_frames"] = expected
        log.warning(
            "%s: %s; --allow_partial: swapped the %d of %d expected frames that decode%s",
            info.path,
            damage[0] if damage else "the file ends early",
            stats["frames"],
            expected,
            ", audio trimmed to them" if info.audio_codec else "",
        )
    if tracker is not None:
        stats["tracks"] = tracker.started
        stats["faces_described"] = tracker.descriptors_computed
    if follower is not None:
        stats["detections"] = follower.detections
    log.info(
        "%s: %d frames, %d faces swapped%s",
        output,
        stats["frames"],
        stats["faces_swapped"],
        "" if info.audio_codec else " (the input has no audio)",
    )
    return stats


def _face_finder(swapper, options: VideoOptions):
    """frame -> faces to swap, the tracker (None with --no-track: per-frame selection, overlap smoothing) and the
    FaceFollower that decides when to detect (None: every frame, --no-track)."""
    from facedancer.flow import FaceFollower
    from facedancer.tracking import FaceTracker

    if not options.track:
        if options.detect_every == 1:
            smoother = LandmarkSmoother(options.smoothing)
            return (lambda frame: swapper.select(frame, smoother(swapper.detect(frame), frame))), None, None
        # boxes only, as LandmarkSmoother, but followed between detections
        follower = FaceFollower(swapper.detect, FaceTracker(options.smoothing, max_missing=0), options.detect_every)
        return (lambda frame: swapper.select(frame, [t.face for t in follower(frame)])), None, follower
    tracker = swapper.new_tracker(options.smoothing)
    selection = swapper.track_selection()
    follower = FaceFollower(swapper.detect, tracker, options.detect_every)

    def find(frame):
        return selection(follower(frame), tracker.tracks)

    return find, tracker, follower

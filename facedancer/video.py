"""Video I/O with the ffmpeg shipped in imageio-ffmpeg: threaded sequential decoding and encoding,
audio copied from the input, and outputs written under a temporary name then renamed.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedancer.background import ahead
from facedancer.errors import FaceDancerError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}
_END = object()


class VideoError(FaceDancerError):
    """A video that cannot be read or written."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int  # as displayed: after the rotation in the file's metadata
    height: int
    fps: float  # the exact rate of a constant-rate file (e.g. 24000/1001), else the container's average
    duration: float
    codec: str
    audio_codec: str | None
    frames: int = 0  # video packets in the file (0: unknown)
    variable_rate: bool = False  # frame intervals really vary: decoding resamples to `fps`
    damage: str = ""  # why the file is truncated or damaged (probed with allow_partial); "" for a sound file
    declared_frames: int = 0  # with damage: the frames the file should hold (its header's length)

    @property
    def estimated_frames(self) -> int:
        if self.frames and not self.variable_rate:
            return self.frames
        return max(1, round(self.fps * self.duration))

    @property
    def expected_frames(self) -> int:
        """The frames a whole file would give: the declared length of a damaged one, else estimated_frames."""
        return max(self.declared_frames, self.estimated_frames)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_NO_PTS = -9223372036854775808
# Frame rates cameras and editors write; a measured rate within 0.2 % of one of them is taken to be it.
_COMMON_RATES = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 48.0, 50.0, 60000 / 1001, 60.0, 120.0)


def _avi_declared_frames(path: Path) -> int | None:
    """dwLength of an AVI's video stream header: the frames the file should hold (its index may be gone)."""
    with open(path, "rb") as f:
        head = f.read(8192)
    if head[:4] != b"RIFF":
        return None
    at = head.find(b"strh")
    while at >= 0 and head[at + 8 : at + 12] != b"vids":
        at = head.find(b"strh", at + 4)
    if at < 0 or len(head) < at + 44:
        return None
    return int.from_bytes(head[at + 40 : at + 44], "little")  # after "strh", size, type, handler, ..., dwStart


def scan_frames(path: Path) -> tuple[np.ndarray, list[str]]:
    """Presentation times (seconds, sorted) of every video packet, read without decoding, and the errors the
    demuxer reported (a truncated or damaged file)."""
    from fractions import Fraction

    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy"]
        + ["-f", "framecrc", "-"],
        capture_output=True,
        text=True,
    )
    base, ticks = Fraction(1), []
    for line in result.stdout.splitlines():
        if line.startswith("#tb 0:"):
            base = Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            fields = [v.strip() for v in line.split(",")]
            if fields[0] == "0" and len(fields) >= 3:
                dts, pts = int(fields[1]), int(fields[2])
                ticks.append(pts if pts != _NO_PTS else dts)
    errors = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 and not errors:
        errors = [f"ffmpeg exit status {result.returncode}"]
    return np.sort(np.array(ticks, np.float64)) * float(base), errors


def constant_rate(times: np.ndarray) -> float | None:
    """The frame rate of evenly spaced times (within a quarter frame of a straight line), else None.

    The first frame is left out of the fit: AVI files with B-frames start with an empty packet, a one-frame
    gap after the first frame that decoders do not show.
    """
    times = times[1:]
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    step = (times[-1] - times[0]) / (len(times) - 1)
    drift = np.abs(times - (times[0] + step * np.arange(len(times)))).max()
    if drift > 0.25 * step + 1e-6:
        return None
    rate = 1.0 / step

    def misfit(r: float) -> float:  # how far the times are from frames at exactly r per second
        ideal = np.arange(len(times)) / r
        return float(np.abs(times - ideal - np.median(times - ideal)).max())

    close = [r for r in _COMMON_RATES if abs(rate - r) <= 0.003 * r]  # containers round times to ticks
    return min(close, key=misfit) if close else rate


PARTIAL_HINT = "re-export or re-copy it, or pass --allow_partial to use the frames that decode"


def probe(path: str | Path, allow_partial: bool = False) -> VideoInfo:
    """Size, frame rate, frame count, duration and codecs; VideoError for a missing, unreadable, truncated
    or damaged file. With `allow_partial` a truncated or damaged file whose start can be read is accepted:
    `damage` says why, `frames` counts the packets that can be read, `declared_frames` those it should hold.
    A file with nothing readable (an MP4 whose index at the end was cut off) is refused either way."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    frames = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(frames)
    except (OSError, RuntimeError, StopIteration) as exc:
        raise VideoError(f"{path}: not a readable video ({str(exc).strip().splitlines()[-1][:200]})") from exc
    finally:
        frames.close()
    width, height = meta.get("size") or (0, 0)
    if not width or not meta.get("fps"):
        raise VideoError(f"{path}: no video stream")
    times, errors = scan_frames(path)
    damage = ""
    if errors:
        damage = f"the file is damaged or truncated ({errors[0][-160:]})"
    declared = _avi_declared_frames(path) if path.suffix.lower() == ".avi" else None
    if declared and len(times) < declared - max(2, declared // 50):  # the muxer may pad with empty frames
        damage = f"the file is truncated ({len(times)} of its {declared} frames)"
    if damage and not allow_partial:
        raise VideoError(f"{path}: {damage}; {PARTIAL_HINT}")
    if len(times) == 0:
        raise VideoError(f"{path}: the video has no frames")
    rate = constant_rate(times)
    variable = rate is None and len(times) >= 3
    if damage and rate is None:  # B-frames lost at the cut leave gaps at the end: trust the stream header
        rate, variable = float(meta["fps"]), False  # and decode the frames as they are, no resampling
    if damage and not declared:
        declared = round(rate * float(meta.get("duration") or 0.0))
    return VideoInfo(
        path,
        int(width),
        int(height),
        rate or float(meta["fps"]),
        float(meta.get("duration") or 0.0),
        str(meta.get("codec", "")),
        meta.get("audio_codec") or None,
        frames=len(times),
        variable_rate=variable,
        damage=damage,
        declared_frames=declared or 0,
    )


BUFFER_BYTES = 128 * 2**20


def frames_ahead(info: VideoInfo, wanted: int) -> int:
    """How many frames a queue may hold: `wanted`, fewer for big frames (4K: 5), so memory stays bounded."""
    return max(2, min(wanted, BUFFER_BYTES // max(info.width * info.height * 3, 1)))


class _Thread(threading.Thread):
    """A worker whose exception is re-raised in the consumer."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self):
        try:
            self._work()
        except BaseException as exc:  # handed to the consumer thread
            self.error = exc


def read_frames(
    info: VideoInfo,
    every: int = 1,
    max_frames: int | None = None,
    buffer: int = 16,
    on_damage: Callable[[str], None] | None = None,
) -> Iterator[np.ndarray]:
    """Decode frames sequentially in a thread (constant memory): RGB uint8 arrays, upright.

    A constant-rate input gives exactly its frames; a variable-rate one is resampled to its average rate
    (frames repeated or dropped), so audio stays in sync. At most `buffer` frames, and at most about
    BUFFER_BYTES, are decoded ahead. A damaged frame raises VideoError, or, given `on_damage` (the
    --allow_partial path), ends the frames there and hands it the reason.
    """
    import imageio_ffmpeg

    shape = (info.height, info.width, 3)
    buffer = frames_ahead(info, buffer)
    timing = ["-fps_mode", "cfr", "-r", f"{info.fps:.6f}"] if info.variable_rate else ["-fps_mode", "passthrough"]
    timing += ["-xerror"]  # a damaged frame stops decoding with an error instead of a shorter video

    def decode() -> Iterator[np.ndarray]:
        gen = imageio_ffmpeg.read_frames(str(info.path), pix_fmt="rgb24", output_params=timing)
        try:
            next(gen)
            kept = 0
            for index, raw in enumerate(gen):
                if max_frames is not None and kept >= max_frames:
                    break
                if index % every == 0:
                    yield np.frombuffer(raw, np.uint8).reshape(shape)
                    kept += 1
        finally:
            gen.close()

    try:
        yield from ahead(decode(), depth=buffer)
    except (OSError, RuntimeError) as exc:
        detail = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in detail if "@" in line or "rror" in line), detail[-1] if detail else "")
        if on_damage is not None:
            on_damage(f"decoding failed, the file is damaged ({reason[-160:]})")
            return
        raise VideoError(
            f"{info.path}: decoding failed, the file is damaged ({reason[-160:]}); {PARTIAL_HINT}"
        ) from exc


class FrameWriter:
    """Encode RGB frames in a thread with libx264 (or `codec`) at a given crf; use as a context manager."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: float,
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "veryfast",
        buffer: int = 16,
    ):
        import imageio_ffmpeg

        even = width % 2 == 0 and height % 2 == 0
        params = ["-crf", str(crf), "-preset", preset] if codec in ("libx264", "libx265") else []
        self._gen = imageio_ffmpeg.write_frames(
            str(path),
            (width, height),
            fps=fps,
            codec=codec,
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p" if even else "yuv444p",  # 4:2:0 needs even sides; keep odd sizes exact
            macro_block_size=1,
            quality=None,
            output_params=params,
            ffmpeg_log_level="error",
        )
        self._gen.send(None)
        self._queue: queue.Queue = queue.Queue(maxsize=buffer)
        self._thread = _Thread(self._encode)
        self._thread.start()
        self.frames = 0

    def _encode(self):
        while True:
            item = self._queue.get()
            if item is _END:
                break
            self._gen.send(np.ascontiguousarray(item).tobytes())
        self._gen.close()

    def write(self, frame: np.ndarray) -> None:
        if self._thread.error is not None:
            raise VideoError(f"encoding failed ({self._thread.error})") from self._thread.error
        self._queue.put(frame)
        self.frames += 1

    def close(self) -> None:
        self._queue.put(_END)
        self._thread.join()
        if self._thread.error is not None:
            raise VideoError(f"encoding failed ({self._thread.error})") from self._thread.error

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except VideoError:
            if exc_type is None:
                raise  # otherwise the error already propagating is the one to report


def mux_audio(
    video_only: Path, audio_source: VideoInfo, output: Path, trim_to_video: bool = False, seconds: float | None = None
) -> None:
    """Copy the input's audio stream unchanged into the encoded video (re-encoding to AAC only if the
    container cannot hold it); `trim_to_video` ends it with the shorter stream, `seconds` after that long
    (a partial input: the audio may end before the video, and is then kept as far as it goes)."""
    base = [
        ffmpeg_exe(),
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        str(video_only),
        "-i",
        str(audio_source.path),
        "-map",
        "0:v:0",
        "-map",
        "1:a?",
        "-c:v",
        "copy",
    ]
    tail = (["-shortest"] if trim_to_video else []) + (["-t", f"{seconds:.6f}"] if seconds else []) + [str(output)]
    result = subprocess.run([*base, "-c:a", "copy", *tail], capture_output=True, text=True)
    if result.returncode != 0:
        log.info("audio %s cannot be copied into %s; re-encoding it as AAC", audio_source.audio_codec, output.suffix)
        result = subprocess.run([*base, "-c:a", "aac", "-b:a", "192k", *tail], capture_output=True, text=True)
    if result.returncode != 0:
        raise VideoError(f"muxing audio into {output} failed: {result.stderr.strip()[-300:]}")

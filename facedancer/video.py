"""Video I/O with the ffmpeg shipped in imageio-ffmpeg: threaded sequential decoding and encoding,
audio copied from the input, and outputs written under a temporary name then renamed.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
from collections.abc import Iterator
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
    width: int
    height: int
    fps: float
    duration: float
    codec: str
    audio_codec: str | None

    @property
    def estimated_frames(self) -> int:
        return max(1, round(self.fps * self.duration))


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: str | Path) -> VideoInfo:
    """Size, frame rate, duration and codecs; VideoError for a missing or unreadable file."""
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
    return VideoInfo(
        path,
        int(width),
        int(height),
        float(meta["fps"]),
        float(meta.get("duration") or 0.0),
        str(meta.get("codec", "")),
        meta.get("audio_codec") or None,
    )


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
    info: VideoInfo, every: int = 1, max_frames: int | None = None, buffer: int = 16
) -> Iterator[np.ndarray]:
    """Decode frames sequentially in a thread (constant memory): RGB uint8 arrays at a constant frame rate.

    Variable-frame-rate inputs are resampled to their average rate, so audio stays in sync.
    """
    import imageio_ffmpeg

    shape = (info.height, info.width, 3)

    def decode() -> Iterator[np.ndarray]:
        gen = imageio_ffmpeg.read_frames(
            str(info.path), pix_fmt="rgb24", output_params=["-fps_mode", "cfr", "-r", f"{info.fps:.6f}"]
        )
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
        raise VideoError(f"{info.path}: decoding failed ({exc})") from exc


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


def mux_audio(video_only: Path, audio_source: VideoInfo, output: Path, trim_to_video: bool = False) -> None:
    """Copy the input's audio stream unchanged into the encoded video (re-encoding to AAC only if the
    container cannot hold it)."""
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
    tail = (["-shortest"] if trim_to_video else []) + [str(output)]
    result = subprocess.run([*base, "-c:a", "copy", *tail], capture_output=True, text=True)
    if result.returncode != 0:
        log.info("audio %s cannot be copied into %s; re-encoding it as AAC", audio_source.audio_codec, output.suffix)
        result = subprocess.run([*base, "-c:a", "aac", "-b:a", "192k", *tail], capture_output=True, text=True)
    if result.returncode != 0:
        raise VideoError(f"muxing audio into {output} failed: {result.stderr.strip()[-300:]}")

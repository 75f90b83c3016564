"""Everything `facedancer serve` can be told, with defaults that are safe on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from facedancer.errors import FaceDancerError

TOKEN_ENV = "FACEDANCER_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 50.0  # one request, all files together
    max_pixels: int = 4096 * 4096  # of an image, or of a video frame
    max_video_seconds: float = 60.0
    max_queue: int = 8  # video jobs waiting or running
    workers: int = 1  # video jobs run at the same time (they share the loaded models)
    image_workers: int = 2  # image swaps run at the same time
    max_image_waiting: int = 32  # image requests waiting for a worker before the server answers 503
    ttl_seconds: float = 3600.0  # finished jobs and their files are deleted this long after they end
    data_dir: Path | None = None  # private folder for uploads and results (default: a new temporary one)
    token: str | None = None  # bearer token the API requires (default: $FACEDANCER_TOKEN, else none)
    detect_every: int | None = None  # videos: detect every N-th frame (None: VideoOptions' default)

    def __post_init__(self):
        for name in ("max_upload_mb", "max_pixels", "max_video_seconds", "ttl_seconds"):
            if getattr(self, name) <= 0:
                raise FaceDancerError(f"--{name} must be positive, got {getattr(self, name)}")
        if self.detect_every is not None and self.detect_every < 1:
            raise FaceDancerError(f"--detect_every must be at least 1, got {self.detect_every}")
        for name in ("max_queue", "workers", "image_workers", "max_image_waiting"):
            if getattr(self, name) < 1:
                raise FaceDancerError(f"--{name} must be at least 1, got {getattr(self, name)}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def api_token(self) -> str | None:
        return self.token or os.environ.get(TOKEN_ENV) or None

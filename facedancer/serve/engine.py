"""The swapping a request asks for, done by the one loaded FaceSwapper: each request gets a shallow copy with
its own options and identities (sharing the models and compiled functions), and video jobs report progress
and stop when cancelled. No swap logic lives here: facedancer.swap and facedancer.swap_video do the work."""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facedancer.errors import FaceDancerError
from facedancer.serve.jobs import Job
from facedancer.serve.settings import ServeSettings
from facedancer.serve.uploads import ServeError, read_image_upload
from facedancer.swap import FaceSwapper, NoFaceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwapRequest:
    """The options of one request (form fields of the API)."""

    select: str = "all"
    identity_strength: float = 1.0
    anonymize: float | None = None
    sources: list[Path] = field(default_factory=list)
    references: list[Path] = field(default_factory=list)


class _Progress:
    """The swapper as swap_video sees it, reporting frames done to the job and stopping when it is cancelled."""

    def __init__(self, swapper: FaceSwapper, job: Job, expected_frames: int):
        self._swapper, self._job, self._expected, self._done = swapper, job, max(1, expected_frames), 0

    def __getattr__(self, name):
        return getattr(self._swapper, name)

    def detect(self, frame):
        self._job.check_cancelled()
        return self._swapper.detect(frame)

    def swap_frames(self, frames, faces):
        self._job.check_cancelled()
        out = self._swapper.swap_frames(frames, faces)
        self._done += len(frames)
        self._job.progress = min(0.99, self._done / self._expected)
        return out


class SwapEngine:
    def __init__(self, swapper: FaceSwapper, settings: ServeSettings):
        self.base, self.settings = swapper, settings

    def prepare(self, request: SwapRequest, video: bool = False) -> FaceSwapper:
        """A swapper for this request: its options, source and reference identities set (422 when unusable).

        Photos run the generator at batch 1: the swapper pads every call to its batch size, which pays off for
        the faces of many video frames but would cost a photo with one face 8 faces' work and memory."""
        try:
            options = dataclasses.replace(
                self.base.options,
                batch_size=self.base.options.batch_size if video else 1,
                select=request.select,
                identity_strength=request.identity_strength,
                anonymize=request.anonymize,
            )
        except FaceDancerError as exc:
            raise ServeError(422, str(exc).replace("--", "")) from exc
        swapper = copy.copy(self.base)
        swapper.options, swapper.source, swapper.reference = options, None, None
        if request.anonymize is None:
            if not request.sources:
                raise ServeError(422, "source: at least one photo of the identity to put on the faces (or anonymize)")
            photos = [read_image_upload(p, self.settings, "source").pixels for p in request.sources]
            try:
                swapper.set_source(photos)
            except NoFaceError as exc:
                raise ServeError(422, "source: no face found in a source photo; use photos with a clear face") from exc
        if request.select == "reference":
            if not request.references:
                raise ServeError(422, "reference: select=reference needs one or more reference photos")
            photos = [read_image_upload(p, self.settings, "reference").pixels for p in request.references]
            try:
                swapper.set_reference(photos)
            except NoFaceError as exc:
                raise ServeError(422, "reference: no face found in a reference photo") from exc
        return swapper

    def swap_image(self, swapper: FaceSwapper, pixels: np.ndarray) -> np.ndarray:
        swapped, count = swapper.swap_counted(pixels)
        if count == 0:
            raise ServeError(422, "target: no face to swap (none found, or none matched the reference)")
        return swapped

    def faces(self, pixels: np.ndarray) -> list[dict]:
        """Detected faces, largest first, for a page that lets a person click one."""
        return [
            {"box": [round(float(v), 1) for v in f.box], "score": round(f.score, 4)} for f in self.base.detect(pixels)
        ]

    def swap_video(self, swapper: FaceSwapper, target: Path, output: Path, job: Job, expected_frames: int) -> dict:
        from facedancer.swap_video import VideoOptions, swap_video

        every = self.settings.detect_every
        options = VideoOptions() if every is None else VideoOptions(detect_every=every)
        return swap_video(_Progress(swapper, job, expected_frames), target, output, options, progress=False)

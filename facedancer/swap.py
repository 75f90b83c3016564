"""FaceSwapper: put the source identity on every selected face of images and video frames.

All faces of a group of frames go through the generator together, in fixed-size batches of one
compiled function (so nothing re-traces); each result is pasted back with a feathered face mask.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedancer import identity_mix
from facedancer.alignment import align
from facedancer.blending import crop_mask, match_colour, paste
from facedancer.detection import Face
from facedancer.errors import FaceDancerError
from facedancer.images import read_image
from facedancer.runtime import PRECISIONS, RUNTIMES

log = logging.getLogger(__name__)

SELECT_MODES = ("all", "largest", "reference")


def unit(vectors: np.ndarray) -> np.ndarray:
    """Vectors scaled to unit length along the last axis (cosine comparisons of identities)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class NoFaceError(FaceDancerError):
    """A photo that must show a face (source, reference) shows none."""


@dataclass(frozen=True)
class SwapOptions:
    select: str = "all"
    reference_distance: float = 0.6
    min_face: int = 24
    score: float = 0.9
    detect_max_side: int = 640
    color_match: bool = False
    batch_size: int = 8
    precision: str = "auto"
    feather: float = 0.08
    rewrite_graph: bool = True
    identity_strength: float = 1.0  # facedancer.identity_mix: 0 = each face's own identity, 1 = the source's
    anonymize: float | None = None  # percent towards a fixed synthetic identity; no source needed
    runtime: str = "tensorflow"
    calibration_dir: str | None = None
    selector: str = "dlib"  # who is who (--select reference, tracks): dlib's descriptor or the swap's ArcFace
    normalize_identity: bool = False  # a deviation: for generators trained with --normalize_identity

    def __post_init__(self):
        if self.select not in SELECT_MODES:
            raise FaceDancerError(f"--select must be one of {', '.join(SELECT_MODES)}, got {self.select!r}")
        if self.precision not in PRECISIONS:
            raise FaceDancerError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.runtime not in RUNTIMES:
            raise FaceDancerError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.batch_size < 1:
            raise FaceDancerError(f"--batch_size must be at least 1, got {self.batch_size}")
        identity_mix.check(self.identity_strength, self.anonymize)
        from facedancer.selection import SELECTORS

        if self.selector not in SELECTORS:
            raise FaceDancerError(f"--selector must be one of {', '.join(SELECTORS)}, got {self.selector!r}")


def resolve_precision(precision: str) -> str:
    """ "auto" is bfloat16 on a CPU-only machine whose CPU has native bf16 (46-58 dB PSNR from float32 frames,
    about 1.5x faster), float32 otherwise (GPUs keep float32: untested here)."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    from facedancer.nn.precision import cpu_has_native_bf16

    if tf.config.list_physical_devices("GPU") or not cpu_has_native_bf16():
        return "float32"
    return "bfloat16"


class FaceSwapper:
    """Generator + identity encoder + detector, loaded through facedancer.load_model / facedancer.detection."""

    def __init__(self, generator, identity, detector=None, options: SwapOptions | None = None):
        import tensorflow as tf

        from facedancer.models import load

        self.options = options or SwapOptions()
        self.generator = load(generator, kind="generator").model if isinstance(generator, (str, Path)) else generator
        self.identity = load(identity, kind="identity").model if isinstance(identity, (str, Path)) else identity
        if detector is None:
            from facedancer.detection import default_detector

            detector = default_detector()
        self.detector = detector
        self.crop_size = int(self.generator.inputs[0].shape[1])
        self.identity_size = int(self.identity.inputs[0].shape[1])
        # ArcFace's raw output, as the original's swap_func.py feeds the generator (not unit length)
        self._embed_fn = tf.function(
            lambda x: tf.cast(self.identity(x, training=False), tf.float32),
            input_signature=[tf.TensorSpec([None, self.identity_size, self.identity_size, 3], tf.float32)],
        )
        self.source: np.ndarray | None = None
        self.reference: np.ndarray | None = None  # in the space of `descriptor` (options.selector)
        self.mask = crop_mask(self.crop_size, self.options.feather)
        # one descriptor per selector, shared by shallow copies (serve makes one per request): dlib's models
        # weigh ~100 MB, so a copy must not load its own
        self._descriptors: dict[str, object] = {}
        self._descriptors_lock = threading.Lock()
        self._generate = self._generator_runner(generator if isinstance(generator, (str, Path)) else None)
        self.precision, self.runtime = self._generate.precision, self._generate.runtime
        log.debug("generator: %s", self._generate.describe())

    def _generator_runner(self, model_file):
        """--runtime / --precision (facedancer.runtime); ONNX choices are checked on aligned sample faces."""
        from facedancer.runtime import generator_runner
        from facedancer.runtime.int8 import calibration_set

        o = self.options
        return generator_runner(
            self.generator,
            o.runtime,
            o.precision,
            rewrite_graph=o.rewrite_graph,
            model_file=model_file,
            calibration=lambda: calibration_set(
                self.detector, self.embed_faces, self.crop_size, o.calibration_dir, score=o.score
            ),
            batch_size=o.batch_size,
        )

    # -- identities ------------------------------------------------------------------------------

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Raw ArcFace embeddings (N, 512) of faces in an image, aligned at the encoder's size."""
        if not faces:
            return np.zeros((0, 512), np.float32)
        crops = np.stack([align(image, f.landmarks, self.identity_size)[0] for f in faces]).astype(np.float32)
        return self._embed_fn(crops / 255.0).numpy()

    def _embeddings_of_photos(self, photos, what: str, aligned: bool = False) -> np.ndarray:
        """Raw embeddings (N, 512) of the largest face of each photo (or of each pre-aligned crop)."""
        import cv2

        embeddings = []
        for photo in photos:
            image = read_image(photo) if isinstance(photo, (str, Path)) else np.asarray(photo)
            if aligned:
                crop = cv2.resize(image, (self.identity_size, self.identity_size), interpolation=cv2.INTER_AREA)
                embeddings.append(self._embed_fn(crop[None].astype(np.float32) / 255.0).numpy()[0])
                continue
            faces = self.detector.detect(image, score=self.options.score, max_side=self.options.detect_max_side)
            if not faces:
                name = photo if isinstance(photo, (str, Path)) else "the given image"
                raise NoFaceError(f"no face found in {what} photo {name}; use a photo with a clearly visible face")
            embeddings.append(self.embed_faces(image, faces[:1])[0])
        if not embeddings:
            raise FaceDancerError(f"no {what} photo given")
        return np.stack(embeddings).astype(np.float32)

    def set_source(self, photos, aligned: bool = False) -> np.ndarray:
        """The identity vector G receives: the mean raw ArcFace embedding of the largest face of each photo,
        as the original feeds its generator (unit length only with SwapOptions.normalize_identity)."""
        embeddings = self._embeddings_of_photos(
            photos if isinstance(photos, (list, tuple)) else [photos], "source", aligned
        )
        if self.options.normalize_identity:
            embeddings = unit(embeddings)
        source = embeddings.mean(axis=0)
        self.source = (unit(source) if self.options.normalize_identity else source).astype(np.float32)
        return self.source

    @property
    def descriptor(self):
        """What tells people apart for --select reference and tracks (options.selector), made on first use and
        shared with every copy of this swapper."""
        from facedancer.selection import make_descriptor

        with self._descriptors_lock:
            if self.options.selector not in self._descriptors:
                self._descriptors[self.options.selector] = make_descriptor(self.options.selector, self)
            return self._descriptors[self.options.selector]

    def set_reference(self, photos) -> np.ndarray:
        """For --select reference: only faces within reference_distance of these photos' identity (the mean
        descriptor of the largest face of each photo) are swapped."""
        vectors = []
        for photo in photos if isinstance(photos, (list, tuple)) else [photos]:
            image = read_image(photo) if isinstance(photo, (str, Path)) else np.asarray(photo)
            faces = self.detect(image)
            if not faces:
                name = photo if isinstance(photo, (str, Path)) else "the given image"
                raise NoFaceError(f"no face found in reference photo {name}; use a photo with a clearly visible face")
            vectors.append(self.descriptor.describe(image, faces[:1])[0])
        if not vectors:
            raise FaceDancerError("no reference photo given")
        self.reference = np.mean(vectors, axis=0)
        return self.reference

    def new_tracker(self, smoothing: float):
        """A FaceTracker for one video, with identity checks through `descriptor`."""
        from facedancer.selection import identity_check
        from facedancer.tracking import FaceTracker

        return FaceTracker(smoothing, identity=identity_check(self.descriptor, self.options.reference_distance))

    def track_selection(self):
        """Per-track face selection for one video (see facedancer.selection.TrackSelection)."""
        from facedancer.selection import TrackSelection

        reference = self.reference if self.options.select == "reference" else None
        if self.options.select == "reference" and reference is None:
            raise FaceDancerError("--select reference needs --reference_face photo(s)")
        return TrackSelection(
            self.options.select,
            self.options.min_face,
            reference,
            self.descriptor.distance if reference is not None else None,
            self.options.reference_distance,
        )

    # -- detection and selection ------------------------------------------------------------------

    def detect(self, frame: np.ndarray) -> list[Face]:
        return self.detector.detect(frame, score=self.options.score, max_side=self.options.detect_max_side)

    def select(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        """Faces to swap: big enough, and as --select says."""
        faces = [f for f in faces if f.size >= self.options.min_face]
        if self.options.select == "largest":
            return faces[:1]
        if self.options.select == "reference":
            if self.reference is None:
                raise FaceDancerError("--select reference needs --reference_face photo(s)")
            vectors = self.descriptor.describe(frame, faces)
            distances = [self.descriptor.distance(v, self.reference) for v in vectors]
            return [f for f, d in zip(faces, distances, strict=True) if d <= self.options.reference_distance]
        return faces

    # -- swapping --------------------------------------------------------------------------------

    def face_identities(self, crops: np.ndarray) -> np.ndarray:
        """The embedding (N, 512) G gets for each aligned crop: the source, or the mix the options ask for
        (identity strength, anonymisation) of the source and the crop's own embedding."""
        mix = identity_mix.IdentityMix(self.options.identity_strength, self.options.anonymize)
        if not mix.needs_target:
            return np.repeat(self.source[None], len(crops), axis=0)
        import cv2

        size = (self.identity_size, self.identity_size)
        small = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in crops]).astype(np.float32)
        own = self._embed_fn(small / 255.0).numpy()
        return mix(self.source, unit(own) if self.options.normalize_identity else own)

    def _generate_batches(self, crops: np.ndarray) -> np.ndarray:
        """Run crops (N, S, S, 3 uint8) through the generator in fixed-size batches (padded)."""
        n, size = len(crops), self.options.batch_size
        identities = self.face_identities(crops)
        out = np.empty((n, self.crop_size, self.crop_size, 3), np.uint8)
        for start in range(0, n, size):
            chunk = crops[start : start + size].astype(np.float32) / 127.5 - 1.0
            z = identities[start : start + size]
            filled = len(chunk)
            if filled < size:
                chunk = np.concatenate([chunk, np.zeros((size - filled, *chunk.shape[1:]), np.float32)])
                z = np.concatenate([z, np.zeros((size - filled, z.shape[1]), np.float32)])
            y = self._generate(chunk, z).numpy()[:filled]
            out[start : start + filled] = np.clip((y + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return out

    def swap_frames(self, frames: list[np.ndarray], faces: list[list[Face]]) -> list[np.ndarray]:
        """Swap the given faces of each frame; frames without faces come back unchanged (the same array)."""
        if self.source is None and self.options.anonymize is None:
            raise FaceDancerError("set the source identity first (set_source)")
        jobs = []  # (frame index, matrix, target crop)
        for index, (frame, frame_faces) in enumerate(zip(frames, faces, strict=True)):
            for face in frame_faces:
                crop, matrix = align(frame, face.landmarks, self.crop_size)
                jobs.append((index, matrix, crop))
        if not jobs:
            return list(frames)
        generated = self._generate_batches(np.stack([crop for _, _, crop in jobs]))
        out = list(frames)
        for (index, matrix, target_crop), crop in zip(jobs, generated, strict=True):
            if self.options.color_match:
                crop = match_colour(crop, target_crop, self.mask)
            out[index] = paste(out[index], crop, matrix, self.mask)
        return out

    def swap(self, image: np.ndarray) -> np.ndarray:
        """Swap every selected face of one RGB image."""
        return self.swap_counted(image)[0]

    def swap_counted(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """The swapped image and how many faces were swapped (0: the image itself, unchanged)."""
        image = np.asarray(image)
        faces = self.select(image, self.detect(image))
        return self.swap_frames([image], [faces])[0], len(faces)

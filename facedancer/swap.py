"""FaceSwapper: put the source identity on every selected face of images and video frames.

All faces of a group of frames go through the generator together, in fixed-size batches of one
compiled function (so nothing re-traces); each result is pasted back with a feathered face mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedancer.alignment import align
from facedancer.blending import crop_mask, match_colour, paste
from facedancer.detection import Face
from facedancer.errors import FaceDancerError
from facedancer.images import read_image

log = logging.getLogger(__name__)

SELECT_MODES = ("all", "largest", "reference")
PRECISIONS = ("auto", "float32", "bfloat16")


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
    normalize_identity: bool = False  # a deviation: for generators trained with --normalize_identity

    def __post_init__(self):
        if self.select not in SELECT_MODES:
            raise FaceDancerError(f"--select must be one of {', '.join(SELECT_MODES)}, got {self.select!r}")
        if self.precision not in PRECISIONS:
            raise FaceDancerError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch_size < 1:
            raise FaceDancerError(f"--batch_size must be at least 1, got {self.batch_size}")


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
        net = self.generator
        self.precision = resolve_precision(self.options.precision)
        if self.precision == "bfloat16":
            from facedancer.nn.precision import with_dtype_policy

            net = with_dtype_policy(self.generator, "mixed_bfloat16")
        stored = net
        if self.options.rewrite_graph:
            from facedancer.nn.inference import optimize_checked

            # float32 rewrites agree with the stored graph to ~120-130 dB, bf16 ones (rounding in both) to
            # ~45-70 dB; a wrong rewrite (a layout no test has seen) would be far below either bar
            net = optimize_checked(net, min_db=80.0 if self.precision == "float32" else 30.0)
        log.debug("generator: %s, graph %s", self.precision, "as stored" if net is stored else "rewritten")
        self._generate = tf.function(
            lambda x, z: tf.cast(net([x, z], training=False), tf.float32),
            input_signature=[
                tf.TensorSpec([None, self.crop_size, self.crop_size, 3], tf.float32),
                tf.TensorSpec([None, 512], tf.float32),
            ],
        )
        # ArcFace's raw output, as the original's swap_func.py feeds the generator (not unit length)
        self._embed_fn = tf.function(
            lambda x: tf.cast(self.identity(x, training=False), tf.float32),
            input_signature=[tf.TensorSpec([None, self.identity_size, self.identity_size, 3], tf.float32)],
        )
        self.source: np.ndarray | None = None
        self.reference: np.ndarray | None = None
        self.mask = crop_mask(self.crop_size, self.options.feather)

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

    def set_reference(self, photos) -> np.ndarray:
        """For --select reference: the unit mean direction of these photos' identity; faces within
        reference_distance (cosine distance) of it are swapped."""
        embeddings = self._embeddings_of_photos(photos if isinstance(photos, (list, tuple)) else [photos], "reference")
        self.reference = unit(unit(embeddings).mean(axis=0)).astype(np.float32)
        return self.reference

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
            distances = 1.0 - unit(self.embed_faces(frame, faces)) @ self.reference
            return [f for f, d in zip(faces, distances, strict=True) if d <= self.options.reference_distance]
        return faces

    # -- swapping --------------------------------------------------------------------------------

    def _generate_batches(self, crops: np.ndarray) -> np.ndarray:
        """Run crops (N, S, S, 3 uint8) through the generator in fixed-size batches (padded)."""
        n, size = len(crops), self.options.batch_size
        z = np.repeat(self.source[None], size, axis=0)
        out = np.empty((n, self.crop_size, self.crop_size, 3), np.uint8)
        for start in range(0, n, size):
            chunk = crops[start : start + size].astype(np.float32) / 127.5 - 1.0
            filled = len(chunk)
            if filled < size:
                chunk = np.concatenate([chunk, np.zeros((size - filled, *chunk.shape[1:]), np.float32)])
            y = self._generate(chunk, z).numpy()[:filled]
            out[start : start + filled] = np.clip((y + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return out

    def swap_frames(self, frames: list[np.ndarray], faces: list[list[Face]]) -> list[np.ndarray]:
        """Swap the given faces of each frame; frames without faces come back unchanged (the same array)."""
        if self.source is None:
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

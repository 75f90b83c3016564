"""The real `facedancer serve` app on a loopback port for tests (uvicorn in a thread), and small inputs."""

from __future__ import annotations

import functools
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def running(app) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


@functools.cache
def small_swapper(detector, seed: int = 0):
    """A FaceSwapper with a 64² random generator and the pixel identity encoder (tells people apart); built once
    per test process (the servers only ever use copies of it)."""
    import keras
    from standins import pixel_identity_encoder

    from facedancer.nn import GeneratorConfig, build_generator
    from facedancer.swap import FaceSwapper, SwapOptions

    keras.utils.set_random_seed(seed)
    generator = build_generator(GeneratorConfig(image_size=64, mapping_depth=1, mapping_size=64))
    # the graph rewrites are tested elsewhere; skipping their build-time check keeps start-up short
    return FaceSwapper(generator, pixel_identity_encoder(seed), detector, SwapOptions(rewrite_graph=False))


def photo_bytes(path: Path, height: int = 320, fmt: str = "JPEG") -> bytes:
    """A real photo scaled to `height`, encoded as `fmt`."""
    from PIL import Image

    from facedancer.images import read_image
    from facedancer.samples import portrait

    buffer = io.BytesIO()
    Image.fromarray(portrait(read_image(path), height)).save(buffer, format=fmt)
    return buffer.getvalue()


def decode_image(data: bytes) -> tuple[np.ndarray, str]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")), str(image.format)

"""`facedancer serve`: the web page and HTTP API over models loaded once (facedancer/serve/)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path

from facedancer.cli import types
from facedancer.cli.common import add_device_flag
from facedancer.errors import FaceDancerError

log = logging.getLogger("facedancer.serve")


def add_parser(sub) -> None:
    from facedancer.runtime import RUNTIMES
    from facedancer.serve.settings import TOKEN_ENV, ServeSettings
    from facedancer.swap import PRECISIONS, SwapOptions

    d, s = SwapOptions(), ServeSettings()
    p = sub.add_parser(
        "serve",
        help="serve a web page and an HTTP API for swapping faces",
        description="Load the models once and serve the page (/) and the API (/v1/..., documented at /docs). "
        "Binds to 127.0.0.1 unless --host says otherwise.",
    )
    g = p.add_argument_group("models")
    g.add_argument("--facedancer_path", required=True, help="generator file (.keras, FaceDancer_config_*.h5, …)")
    g.add_argument(
        "--arcface_path", default="arcface_model/ArcFace-Res50.h5", help="identity encoder (arcface_model/…)"
    )
    g.add_argument("--retina_path", help="RetinaFace frozen graph (default: the one in the retinaface package)")
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="generator precision, as facedancer swap (int8 needs --runtime onnxruntime/auto; checked against "
        f"float32 at start-up) ({d.precision})",
    )
    g.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=d.runtime,
        help="what runs the generator, as facedancer swap: tensorflow, onnxruntime (exported once, cached), or "
        f"auto = the fastest choice within 40 dB of float32 on this machine ({d.runtime})",
    )
    g.add_argument(
        "--calibration_dir",
        help="face photos for int8 calibration and the start-up checks (default: the face_recognition samples)",
    )
    g.add_argument(
        "--batch_size", type=types.POSITIVE_INT, default=d.batch_size, help=f"faces per generator call ({d.batch_size})"
    )
    from facedancer.swap_video import VideoOptions

    every = VideoOptions().detect_every
    g.add_argument(
        "--detect_every",
        type=types.POSITIVE_INT,
        default=every,
        metavar="N",
        help=f"videos: detect faces on every N-th frame, follow them by flow in between; 1: every frame ({every})",
    )
    g = p.add_argument_group("network")
    g.add_argument("--host", default=s.host, help=f"address to bind; anything but loopback needs care ({s.host})")
    g.add_argument("--port", type=types.int_between(0, 65535), default=s.port, help=f"port ({s.port})")
    g.add_argument("--token", help=f"bearer token the API requires (default ${TOKEN_ENV}; none: open)")
    g = p.add_argument_group("limits")
    g.add_argument(
        "--max_upload_mb", type=types.POSITIVE, default=s.max_upload_mb, help=f"MB per request ({s.max_upload_mb:g})"
    )
    g.add_argument(
        "--max_pixels",
        type=types.megapixels,
        default=s.max_pixels,
        help=f"most pixels of a photo or frame ({s.max_pixels})",
    )
    g.add_argument(
        "--max_video_seconds",
        type=types.POSITIVE,
        default=s.max_video_seconds,
        help=f"longest video accepted, seconds ({s.max_video_seconds:g})",
    )
    g.add_argument(
        "--max_queue",
        type=types.POSITIVE_INT,
        default=s.max_queue,
        help=f"video jobs queued or running ({s.max_queue})",
    )
    g.add_argument(
        "--workers", type=types.POSITIVE_INT, default=s.workers, help=f"video jobs run at once ({s.workers})"
    )
    g.add_argument(
        "--image_workers", type=types.POSITIVE_INT, default=s.image_workers, help=f"photos at once ({s.image_workers})"
    )
    g.add_argument(
        "--max_image_waiting",
        type=types.POSITIVE_INT,
        default=s.max_image_waiting,
        help=f"photo requests waiting before 503 ({s.max_image_waiting})",
    )
    g.add_argument(
        "--ttl_seconds",
        type=types.POSITIVE,
        default=s.ttl_seconds,
        help=f"finished jobs and their files are deleted after this long ({s.ttl_seconds:g})",
    )
    g.add_argument("--data_dir", help="private folder for uploads and results (default: a new temporary folder)")
    add_device_flag(p)
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise FaceDancerError(
            f"facedancer serve needs the serve extra ({exc.name} is missing): pip install -e '.[serve]'"
        ) from exc

    from facedancer.cli.swap import _check_model
    from facedancer.detection import RetinaFaceDetector, default_detector
    from facedancer.serve import ServeSettings, create_app
    from facedancer.swap import FaceSwapper, SwapOptions

    settings = ServeSettings(
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        max_video_seconds=args.max_video_seconds,
        max_queue=args.max_queue,
        workers=args.workers,
        image_workers=args.image_workers,
        max_image_waiting=args.max_image_waiting,
        ttl_seconds=args.ttl_seconds,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        token=args.token,
        detect_every=args.detect_every,
    )
    _check_model(args.facedancer_path, "generator")
    _check_model(args.arcface_path, "identity")
    detector = RetinaFaceDetector(args.retina_path) if args.retina_path else default_detector()
    options = SwapOptions(
        precision=args.precision,
        batch_size=args.batch_size,
        runtime=args.runtime,
        calibration_dir=args.calibration_dir,
    )
    swapper = FaceSwapper(args.facedancer_path, args.arcface_path, detector, options)
    if not is_loopback(settings.host) and settings.api_token is None:
        log.warning("serving on %s without a token: anyone who can reach it can use it (--token)", settings.host)
    if settings.port < 0 or settings.port > 65535:
        raise FaceDancerError(f"--port must be 0-65535, got {settings.port}")
    app = create_app(swapper, settings)
    log.info("serving on http://%s:%d/ (API docs at /docs)", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0

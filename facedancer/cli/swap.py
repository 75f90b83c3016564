"""`facedancer swap` (also video_swap/multi_face_single_source.py and video_swap/image_swap.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facedancer.cli.common import add_device_flag
from facedancer.errors import FaceDancerError
from facedancer.images import IMAGE_SUFFIXES

log = logging.getLogger("facedancer.swap")

MODEL_HINTS = {
    "generator": "get a published FaceDancer_config_*.h5 (README: 'Model files you bring') or export one with "
    "`facedancer train --export`",
    "identity": "put ArcFace-Res50.h5 in arcface_model/ (see arcface_model/README.md) or pass --arcface_path",
}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "swap",
        help="swap faces in a video, an image, or a folder of images",
        description="Put the identity of --swap_source on the faces of --target (a video, an image, or a folder "
        "of images). Videos keep their frame count, frame rate, size and audio.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from facedancer.swap import PRECISIONS, SELECT_MODES, SwapOptions
    from facedancer.swap_video import VideoOptions

    d, v = SwapOptions(), VideoOptions()  # one source of truth for the defaults, as in the train command
    g = p.add_argument_group("inputs and outputs")
    g.add_argument(
        "--target",
        "--vid_path",
        "--img_path",
        dest="target",
        required=True,
        help="video, image, or folder of images to swap faces in",
    )
    g.add_argument(
        "--swap_source",
        required=True,
        nargs="+",
        help="photo(s) of the identity to put on the faces (embeddings are averaged)",
    )
    g.add_argument("--output", required=True, help="output video / image file, or folder for a folder target")
    g.add_argument("--facedancer_path", required=True, help="generator file (.keras, FaceDancer_config_*.h5, …)")
    g.add_argument(
        "--arcface_path",
        default="arcface_model/ArcFace-Res50.h5",
        help="identity encoder (default arcface_model/ArcFace-Res50.h5)",
    )
    g.add_argument("--retina_path", help="RetinaFace frozen graph (default: the one in the retinaface package)")
    g.add_argument(
        "--align_source",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="detect and align the source photos (default); --no-align_source for pre-aligned crops",
    )
    g = p.add_argument_group("faces")
    g.add_argument(
        "--select",
        choices=SELECT_MODES,
        default=d.select,
        help=f"which faces to swap: all, the largest, or those matching --reference_face ({d.select})",
    )
    g.add_argument("--reference_face", nargs="+", help="photo(s) of the person to replace (--select reference)")
    g.add_argument(
        "--reference_distance",
        type=float,
        default=d.reference_distance,
        help=f"max identity cosine distance to --reference_face for a face to be swapped ({d.reference_distance})",
    )
    g.add_argument(
        "--min_face",
        type=int,
        default=d.min_face,
        help=f"leave faces smaller than this many pixels alone ({d.min_face})",
    )
    g.add_argument("--score", type=float, default=d.score, help=f"minimum detection score ({d.score})")
    g.add_argument(
        "--detect_max_side",
        type=int,
        default=d.detect_max_side,
        help=f"detect on a copy downscaled to this longer side; 0 = full size ({d.detect_max_side})",
    )
    g.add_argument("--color_match", action="store_true", help="match the swapped face's colours to the target skin")
    g.add_argument(
        "--normalize_identity",
        action="store_true",
        help="feed the generator the unit-length mean identity, for a generator trained with --normalize_identity "
        "(a deviation; the original, and the default, feed the mean raw ArcFace embedding)",
    )
    g.add_argument(
        "--smoothing",
        type=float,
        default=v.smoothing,
        help=f"landmark smoothing across video frames against jitter, 0 (off) to <1 ({v.smoothing})",
    )
    g = p.add_argument_group("speed and encoding")
    g.add_argument("--batch_size", type=int, default=d.batch_size, help=f"faces per generator call ({d.batch_size})")
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="generator compute precision; auto = bfloat16 on a CPU with AVX512-BF16/AMX and no GPU, "
        f"else float32 ({d.precision})",
    )
    g.add_argument(
        "--plain_graph",
        action="store_true",
        help="run the generator graph exactly as stored, without the exact inference rewrites "
        "(fused instance norm, strided convs); slower, for debugging",
    )
    g.add_argument(
        "--sample_rate",
        type=int,
        default=v.sample_rate,
        help=f"keep every N-th frame; fps is divided by N ({v.sample_rate})",
    )
    g.add_argument(
        "--length", type=float, default=v.length, help=f"fraction of the video to process, (0, 1] ({v.length})"
    )
    g.add_argument("--compare", action="store_true", help="write the original and the swap side by side")
    g.add_argument("--codec", default=v.codec, help=f"video codec ({v.codec})")
    g.add_argument("--crf", type=int, default=v.crf, help=f"x264/x265 constant rate factor, lower = better ({v.crf})")
    g.add_argument(
        "--preset",
        default=v.preset,
        help=f"x264/x265 preset: slower presets spend more CPU for smaller files at the same --crf ({v.preset})",
    )
    add_device_flag(p)


def _check_model(path: str, kind: str) -> None:
    if not Path(path).exists():
        raise FaceDancerError(f"{kind} model not found: {path}; {MODEL_HINTS[kind]}")


def build_swapper(args: argparse.Namespace):
    from facedancer.detection import RetinaFaceDetector, default_detector
    from facedancer.swap import FaceSwapper, SwapOptions

    _check_model(args.facedancer_path, "generator")
    _check_model(args.arcface_path, "identity")
    options = SwapOptions(
        select=args.select,
        reference_distance=args.reference_distance,
        min_face=args.min_face,
        score=args.score,
        detect_max_side=args.detect_max_side or None,
        color_match=args.color_match,
        batch_size=args.batch_size,
        precision=args.precision,
        rewrite_graph=not args.plain_graph,
        normalize_identity=args.normalize_identity,
    )
    detector = RetinaFaceDetector(args.retina_path) if args.retina_path else default_detector()
    swapper = FaceSwapper(args.facedancer_path, args.arcface_path, detector, options)
    swapper.set_source(args.swap_source, aligned=not args.align_source)
    if args.select == "reference":
        if not args.reference_face:
            raise FaceDancerError("--select reference needs --reference_face PHOTO")
        swapper.set_reference(args.reference_face)
    return swapper


def run(args: argparse.Namespace) -> int:
    target, output = Path(args.target), Path(args.output)
    if not target.exists():
        raise FaceDancerError(f"target not found: {target}")
    for photo in args.swap_source:
        if not Path(photo).is_file():
            raise FaceDancerError(f"source photo not found: {photo}")
    if target.is_dir():
        return swap_folder(build_swapper(args), target, output)
    if target.suffix.lower() in IMAGE_SUFFIXES:
        return swap_image_file(build_swapper(args), target, output)
    return swap_video_file(build_swapper(args), target, output, args)


def swap_image_file(swapper, target: Path, output: Path) -> int:
    from facedancer.images import read_image, write_image

    swapped, count = swapper.swap_counted(read_image(target))
    if not count:
        log.warning("%s: no face to swap; written unchanged", target)
    write_image(output, swapped)
    log.info("wrote %s (%d faces swapped)", output, count)
    return 0


def swap_folder(swapper, folder: Path, output: Path) -> int:
    from tqdm import tqdm

    from facedancer.images import ImageReadError, read_image, write_image

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FaceDancerError(f"{folder} holds no images")
    failed = 0
    for path in tqdm(files, unit="img", desc="swapping"):
        try:
            image = read_image(path)
        except ImageReadError as exc:
            log.warning("skipping %s", exc)
            failed += 1
            continue
        write_image(output / path.relative_to(folder), swapper.swap(image))
    log.info("wrote %d images to %s%s", len(files) - failed, output, f" ({failed} unreadable)" if failed else "")
    return 0


def swap_video_file(swapper, target: Path, output: Path, args: argparse.Namespace) -> int:
    from facedancer.swap_video import VideoOptions, swap_video

    options = VideoOptions(
        sample_rate=args.sample_rate,
        length=args.length,
        compare=args.compare,
        codec=args.codec,
        crf=args.crf,
        preset=args.preset,
        smoothing=args.smoothing,
        frames_per_batch=args.batch_size,
    )
    swap_video(swapper, target, output, options)
    return 0

"""`facedancer swap` (also video_swap/multi_face_single_source.py and video_swap/image_swap.py)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from facedancer.cli import types
from facedancer.cli.common import add_device_flag, add_max_pixels_flag
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
    from facedancer.runtime import RUNTIMES
    from facedancer.selection import SELECTORS
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
        nargs="+",
        help="photo(s) of the identity to put on the faces (embeddings are averaged); required unless --anonymize",
    )
    g.add_argument(
        "--output",
        required=True,
        help="output video / image file, or folder for a folder target; never the target itself (see --in_place)",
    )
    g.add_argument(
        "--in_place",
        action="store_true",
        help="allow --output to be --target: the swap replaces the original file(s) (off: refused)",
    )
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
        type=types.float_in(0.0, 2.0),
        default=d.reference_distance,
        help="max identity distance to --reference_face for a face to be swapped, and between two sightings of "
        f"one person in a video: dlib's Euclidean distance, or 1 - cosine with --selector arcface "
        f"({d.reference_distance})",
    )
    g.add_argument(
        "--selector",
        choices=SELECTORS,
        default=d.selector,
        help="what tells people apart for --select reference and video tracks: dlib's face descriptor "
        f"(independent of the swap model; same person < 0.6) or the swap's ArcFace encoder ({d.selector})",
    )
    g.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=v.track,
        help="videos: follow each person across frames (identity-checked through crossings, occlusions and cuts) "
        "so --select and smoothing stay with the same person; --no-track decides per frame (default: on)",
    )
    g.add_argument(
        "--min_face",
        type=types.NON_NEGATIVE_INT,
        default=d.min_face,
        help=f"leave faces smaller than this many pixels alone ({d.min_face})",
    )
    g.add_argument("--score", type=types.FRACTION, default=d.score, help=f"minimum detection score ({d.score})")
    g.add_argument(
        "--detect_max_side",
        type=types.NON_NEGATIVE_INT,
        default=d.detect_max_side,
        help=f"detect on a copy downscaled to this longer side; 0 = full size ({d.detect_max_side})",
    )
    g.add_argument("--color_match", action="store_true", help="match the swapped face's colours to the target skin")
    g.add_argument(
        "--feather",
        type=types.FRACTION,
        default=d.feather,
        help="blur of the paste mask's edge, as a fraction of the crop size; the mask is 0 on the crop border "
        f"whatever the value ({d.feather})",
    )
    g.add_argument(
        "--normalize_identity",
        action="store_true",
        help="feed the generator the unit-length mean identity, for a generator trained with --normalize_identity "
        "(a deviation; the original, and the default, feed the mean raw ArcFace embedding)",
    )
    g.add_argument(
        "--identity_strength",
        type=types.float_in(0.0, 1.5),
        default=d.identity_strength,
        help="0 = each face keeps its own identity (G reconstructs it), 1 = the source's; between blends the two "
        f"embeddings, up to 1.5 pushes past the source ({d.identity_strength})",
    )
    g.add_argument(
        "--anonymize",
        type=types.float_in(0.0, 100.0),
        metavar="PERCENT",
        default=d.anonymize,
        help="instead of a source, move every face's identity PERCENT (0-100) of the way to a fixed synthetic one",
    )
    g.add_argument(
        "--smoothing",
        type=types.float_in(0.0, 1.0, high_open=True),
        default=v.smoothing,
        help="landmark smoothing strength against detector jitter, 0 (off) to <1: the share of each face's "
        f"landmarks taken from its track's prediction, which follows the image's own motion ({v.smoothing})",
    )
    g = p.add_argument_group("speed and encoding")
    g.add_argument(
        "--detect_every",
        type=types.POSITIVE_INT,
        default=v.detect_every,
        metavar="N",
        help="videos: run the face detector on every N-th frame only and follow faces by optical flow in between; "
        f"a scene cut or a lost face detects at once; 1 = every frame ({v.detect_every})",
    )
    g.add_argument(
        "--batch_size", type=types.POSITIVE_INT, default=d.batch_size, help=f"faces per generator call ({d.batch_size})"
    )
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="generator precision. int8 needs --runtime onnxruntime/auto; every choice but float32 is checked "
        "against float32 on calibration faces at start-up and falls back below its bar (README: 'Runtimes and "
        "precisions'). auto: with --runtime tensorflow bfloat16 on a CPU with AVX512-BF16/AMX and no GPU, else "
        f"float32; with --runtime auto/onnxruntime the fastest choice within 40 dB of float32 ({d.precision})",
    )
    g.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=d.runtime,
        help="what runs the generator: tensorflow, onnxruntime (exported to ONNX once, cached in "
        "~/.cache/facedancer/onnx; CUDA/TensorRT providers when present), or auto = the fastest on this machine "
        f"({d.runtime})",
    )
    g.add_argument(
        "--calibration_dir",
        help="folder of face photos for int8 calibration and the start-up checks (default: the face_recognition "
        "sample photos)",
    )
    g.add_argument(
        "--plain_graph",
        action="store_true",
        help="run the generator graph exactly as stored, without the exact inference rewrites "
        "(fused instance norm, strided convs); slower, for debugging",
    )
    g.add_argument(
        "--sample_rate",
        type=types.POSITIVE_INT,
        default=v.sample_rate,
        help=f"keep every N-th frame; fps is divided by N ({v.sample_rate})",
    )
    g.add_argument(
        "--length",
        type=types.float_in(0.0, 1.0, low_open=True),
        default=v.length,
        help=f"fraction of the video to process, (0, 1] ({v.length})",
    )
    g.add_argument("--compare", action="store_true", help="write the original and the swap side by side")
    g.add_argument(
        "--allow_partial",
        action="store_true",
        help="a truncated or damaged video: swap the frames that decode (audio trimmed to match), warn how many "
        "of how many expected were used, exit 0 (off: refused with exit 1, nothing written)",
    )
    g.add_argument("--codec", default=v.codec, help=f"video codec ({v.codec})")
    g.add_argument(
        "--crf",
        type=types.int_between(0, 63),
        default=v.crf,
        help=f"x264/x265 constant rate factor, lower = better ({v.crf})",
    )
    g.add_argument(
        "--preset",
        default=v.preset,
        help=f"x264/x265 preset: slower presets spend more CPU for smaller files at the same --crf ({v.preset})",
    )
    add_max_pixels_flag(p)
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
        identity_strength=args.identity_strength,
        anonymize=args.anonymize,
        runtime=args.runtime,
        calibration_dir=args.calibration_dir,
        selector=args.selector,
        feather=args.feather,
        normalize_identity=args.normalize_identity,
    )
    start = time.perf_counter()
    log.info("loading the generator, the identity encoder and the face detector …")
    detector = RetinaFaceDetector(args.retina_path) if args.retina_path else default_detector()
    swapper = FaceSwapper(args.facedancer_path, args.arcface_path, detector, options)
    log.info("models ready in %.1f s", time.perf_counter() - start)
    if args.swap_source:
        swapper.set_source(args.swap_source, aligned=not args.align_source)
    if args.select == "reference":
        if not args.reference_face:
            raise FaceDancerError("--select reference needs --reference_face PHOTO")
        swapper.set_reference(args.reference_face)
    return swapper


def check_paths(args: argparse.Namespace) -> None:
    """Everything about the paths that can be wrong, checked before a model is loaded or a frame decoded."""
    from facedancer.paths import OutputError, check_output_file, check_output_folder, refuse_output_over_inputs
    from facedancer.video import VIDEO_SUFFIXES

    target, output = Path(args.target), Path(args.output)
    if not target.exists():
        raise FaceDancerError(f"--target {target} not found; check the path")
    if not args.swap_source and args.anonymize is None:
        raise FaceDancerError("--swap_source PHOTO is required (or --anonymize PERCENT, which needs no source)")
    for photo in [*(args.swap_source or []), *(args.reference_face or [])]:
        if not Path(photo).is_file():
            raise FaceDancerError(f"source photo not found: {photo}; check the path")
    others = [("--swap_source", s) for s in args.swap_source or []]
    others += [("--reference_face", s) for s in args.reference_face or []]
    others += [("--facedancer_path", args.facedancer_path), ("--arcface_path", args.arcface_path)]
    others += [("--retina_path", args.retina_path)]
    refuse_output_over_inputs(output, others)
    if args.in_place:
        from facedancer.paths import same_file

        if not same_file(output, target):
            raise OutputError(f"--in_place needs --output to be --target ({target}), got {output}")
        return
    hint = "choose another --output, or pass --in_place to replace the originals"
    refuse_output_over_inputs(output, [("--target", target)], allow_inside=False, hint=hint)
    if target.is_dir():
        if output.exists() and not output.is_dir():
            raise OutputError(f"--output {output} is a file; a folder --target needs an output folder")
        check_output_folder(output)
        return
    kind = "image" if target.suffix.lower() in IMAGE_SUFFIXES else "video"
    allowed = sorted(IMAGE_SUFFIXES if kind == "image" else VIDEO_SUFFIXES - {".gif"})
    if output.suffix.lower() not in allowed:
        got = f"extension {output.suffix!r}" if output.suffix else "no extension"
        article = "an" if kind == "image" else "a"
        raise OutputError(f"--output {output} has {got}; {article} {kind} output needs one of {', '.join(allowed)}")
    check_output_file(output)


def run(args: argparse.Namespace) -> int:
    target, output = Path(args.target), Path(args.output)
    check_paths(args)
    if target.is_dir():
        return swap_folder(build_swapper(args), target, output)
    if target.suffix.lower() in IMAGE_SUFFIXES:
        return swap_image_file(build_swapper(args), target, output)
    from facedancer.swap_video import check_output, clean_stale_temps
    from facedancer.video import probe

    check_output(output)  # before any work: loading models takes a while
    clean_stale_temps(output)
    probe(target, allow_partial=args.allow_partial)  # a truncated or damaged video is refused before the models load
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
    from facedancer.images import ImageReadError, read_image, write_image
    from facedancer.progress import bar as progress_bar

    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise FaceDancerError(f"{folder} holds no images")
    failed = 0
    for path in progress_bar(files, unit="img", desc="swapping"):
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
        track=args.track,
        allow_partial=args.allow_partial,
        detect_every=args.detect_every,
    )
    swap_video(swapper, target, output, options)
    return 0

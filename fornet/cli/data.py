"""fornet data (alias fornet-data): generate a Cityscapes-format data set, or check one.

Examples:

    fornet data synth --out data/synth --train 48 --val 12 --size 256x512 --seed 0
    fornet data check --root /datasets/cityscapes --split val
    fornet data video --out street.mp4 --size 256x512 --frames 100
"""

from __future__ import annotations

import argparse
import operator
import sys
from dataclasses import dataclass
from pathlib import Path

from fornet.calibration.cityscapes import scan_split
from fornet.calibration.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from fornet.calibration.synth import generate_synthetic_cityscapes, prepare_output_root
from fornet.cli.command import Command
from fornet.errors import FornetError
from fornet.options import add_options, count_arg, format_hw, hw_arg, option, options_from_args, positive_float_arg
from fornet.progress import progress_wanted
from fornet.runtime.video.synthetic import write_pan_video


@dataclass(frozen=True)
class SynthOptions:
    """``fornet data synth``: generate procedural street scenes."""

    out: Path = option(flag="--out", parse=Path, required=True, metavar="DIR", help="output folder (the data set root)")
    train: int = option(48, flag="--train", parse=count_arg, help="number of train scenes")
    val: int = option(12, flag="--val", parse=count_arg, help="number of val scenes")
    size: tuple[int, int] = option((256, 512), flag="--size", parse=hw_arg, metavar="HxW", help="image size")
    seed: int = option(0, flag="--seed", parse=int, help="random seed")
    force: bool = option(False, flag="--force",
                         help="replace the splits of an existing generated data set in --out")
    progress: bool = option(True, flag="--quiet", convert=operator.not_, help="no progress bar")


@dataclass(frozen=True)
class CheckOptions:
    """``fornet data check``: validate a Cityscapes folder."""

    root: str = option(flag="--root", required=True, help="data set root (the folder containing leftImg8bit/)")
    split: str = option("val", flag="--split", help="split to check")
    require_labels: bool = option(True, flag="--unlabelled", convert=operator.not_,
                                  help="accept images without labels (a test split); training and evaluation "
                                       "need every label, so they check with labels required")
    progress: bool = option(True, flag="--quiet", convert=operator.not_, help="no progress bar")


@dataclass(frozen=True)
class VideoOptions:
    """``fornet data video``: a generated street-scene clip (a camera panning across one scene)."""

    out: Path = option(flag="--out", parse=Path, required=True, metavar="FILE", help="H.264 video file (.mp4/.mkv)")
    size: tuple[int, int] = option((256, 512), flag="--size", parse=hw_arg, metavar="HxW", help="frame size")
    frames: int = option(100, flag="--frames", parse=int, metavar="N", help="number of frames")
    fps: float = option(25.0, flag="--fps", parse=positive_float_arg, metavar="F", help="frame rate")
    seed: int = option(0, flag="--seed", parse=int, help="random seed of the scene")
    force: bool = option(False, flag="--force", help="replace an existing --out file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``synth`` and ``check`` sub-commands and their options."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    synth = sub.add_parser("synth", help="generate street scenes in the Cityscapes layout",
                           description="Generate procedural street scenes with labels in the Cityscapes "
                                       "layout (leftImg8bit/ and gtFine/ with labelIds, color and "
                                       "instanceIds PNGs). Output is bit-identical for a seed.")
    add_options(synth, SynthOptions)
    check = sub.add_parser("check", help="validate a Cityscapes folder and print class frequencies",
                           description="Read every image and labelIds PNG of a split, check the layout, "
                                       "sizes and label values, and print counts and class pixel "
                                       "frequencies (trainIds).")
    add_options(check, CheckOptions)
    video = sub.add_parser("video", help="generate a street-scene video (a camera pan) for fornet run",
                           description="Render one generated street scene wider than the frame and encode a "
                                       "camera pan across it as H.264: an input for `fornet run` and its "
                                       "benchmarks when no camera or recording is at hand.")
    add_options(video, VideoOptions)


def _run_synth(options: SynthOptions) -> int:
    for warning in prepare_output_root(options.out, options.force):
        print(f"warning: {warning}", file=sys.stderr)
    root = generate_synthetic_cityscapes(options.out, train=options.train, val=options.val, size=options.size,
                                         seed=options.seed, progress=progress_wanted(options.progress))
    print(f"wrote {options.train} train and {options.val} val scenes of {format_hw(options.size)} to {root}")
    return 0


def _run_check(options: CheckOptions) -> int:
    stats = scan_split(options.root, options.split, progress=progress_wanted(options.progress),
                       require_labels=options.require_labels)
    print(f"{options.root} [{options.split}]: {stats.images} images in {len(stats.cities)} cities, "
          f"{stats.labelled} labelled")
    if stats.labelled:
        total = int(stats.train_pixels.sum())
        print(f"{'trainId':>7}  {'class':<14}{'pixels %':>9}{'images':>8}")
        for k, name in enumerate(CLASS_NAMES):
            share = 100.0 * stats.train_pixels[k] / total
            print(f"{k:>7}  {name:<14}{share:>9.3f}{stats.train_images[k]:>8}")
        share = 100.0 * stats.train_pixels[IGNORE_INDEX] / total
        print(f"{IGNORE_INDEX:>7}  {'(ignored)':<14}{share:>9.3f}{stats.train_images[IGNORE_INDEX]:>8}")
        missing = [CLASS_NAMES[k] for k in range(NUM_CLASSES) if stats.train_pixels[k] == 0]
        if missing:
            print(f"warning: classes with no pixels: {', '.join(missing)}", file=sys.stderr)
    print("ok")
    return 0


def _run_video(options: VideoOptions) -> int:
    if options.frames < 1:
        raise FornetError(f"--frames must be at least 1, got {options.frames}")
    write_pan_video(options.out, options.size, options.frames, fps=options.fps, seed=options.seed,
                    force=options.force)
    print(f"wrote {options.out}: {options.frames} frames of {format_hw(options.size)} at {options.fps:g} FPS")
    return 0


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Run ``synth``, ``check`` or ``video``."""
    if args.action == "synth":
        return _run_synth(options_from_args(SynthOptions, args))
    if args.action == "video":
        return _run_video(options_from_args(VideoOptions, args))
    return _run_check(options_from_args(CheckOptions, args))


COMMAND = Command(
    name="data",
    alias="fornet-data",
    summary="generate a Cityscapes-format data set (synth) or a street-scene video (video), or check a data set",
    description=__doc__.strip(),
    add_arguments=add_arguments,
    run=run,
)
main = COMMAND.alias_main

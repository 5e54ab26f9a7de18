"""fornet-data: generate a Cityscapes-format data set, or check one.

Examples:

    fornet-data synth --out data/synth --train 48 --val 12 --size 256x512 --seed 0
    fornet-data check --root /datasets/cityscapes --split val
"""

from __future__ import annotations

import argparse
import sys

from fornet.cli_utils import friendly_errors, hw_arg


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fornet-data`` (sub-commands ``synth`` and ``check``)."""
    parser = argparse.ArgumentParser(prog="fornet-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = sub.add_parser("synth", help="generate street scenes in the Cityscapes layout",
                           description="Generate procedural street scenes with labels in the Cityscapes "
                                       "layout (leftImg8bit/ and gtFine/ with labelIds, color and "
                                       "instanceIds PNGs). Output is bit-identical for a seed.")
    synth.add_argument("--out", required=True, help="output folder (the data set root)")
    synth.add_argument("--train", type=_count, default=48, help="number of train scenes (default: 48)")
    synth.add_argument("--val", type=_count, default=12, help="number of val scenes (default: 12)")
    synth.add_argument("--size", type=hw_arg, default=(256, 512), metavar="HxW",
                       help="image size (default: 256x512)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--force", action="store_true",
                       help="replace the splits of an existing generated data set in --out")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")

    check = sub.add_parser("check", help="validate a Cityscapes folder and print class frequencies",
                           description="Read every image and labelIds PNG of a split, check the layout, "
                                       "sizes and label values, and print counts and class pixel "
                                       "frequencies (trainIds).")
    check.add_argument("--root", required=True, help="data set root (the folder containing leftImg8bit/)")
    check.add_argument("--split", default="val", help="split to check (default: val)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _run_synth(args: argparse.Namespace) -> int:
    from fornet.calibration.synth import generate_synthetic_cityscapes, prepare_output_root

    for warning in prepare_output_root(args.out, args.force):
        print(f"warning: {warning}", file=sys.stderr)
    root = generate_synthetic_cityscapes(args.out, train=args.train, val=args.val, size=args.size,
                                         seed=args.seed, progress=not args.quiet)
    h, w = args.size
    print(f"wrote {args.train} train and {args.val} val scenes of {h}x{w} to {root}")
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from fornet.calibration.cityscapes import scan_split
    from fornet.calibration.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES

    stats = scan_split(args.root, args.split, progress=not args.quiet)
    print(f"{args.root} [{args.split}]: {stats.images} images in {len(stats.cities)} cities, "
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


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fornet-data``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return _run_synth(args) if args.command == "synth" else _run_check(args)


if __name__ == "__main__":
    sys.exit(main())

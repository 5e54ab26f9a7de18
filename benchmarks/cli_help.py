"""How long ``fornet --help`` and every ``fornet <command> --help`` take, each in a fresh interpreter.

The help texts must answer in under 0.5 s on a quiet machine (issue 21 item 10; that they import no heavy
library is tests/test_cli_help.py). Timed side by side in one run, interleaved round by round:

* ``python -c pass``: the interpreter's own start, the floor under every command;
* ``python -m fornet [<command>] --help`` for ``fornet`` and each command, from this checkout;
* with ``--baseline REF``: the same commands from another commit (``git archive REF``, laid out as the
  installed package), so the table gives the ratio to it.

Writes a Markdown table (median, spread, ratios) with the machine, its load average and the date.

    python benchmarks/cli_help.py --repeat 15 --baseline 0f2843b --out benchmarks/cli_help_results.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import tomllib

from fornet import __version__
from fornet.atomic import write_text_atomic
from fornet.cli.command import friendly_errors
from fornet.cli.main import commands

REPO = Path(__file__).resolve().parent.parent
LIMIT_S = 0.5


def help_commands() -> list[list[str]]:
    """``[]`` (``fornet --help``) and each command, as the arguments before ``--help``."""
    return [[], *([command.name] for command in commands())]


def baseline_tree(ref: str, destination: Path) -> Path:
    """The sources of ``ref`` laid out as the installed package (``fornet/{model,runtime,...}``)."""
    archive = destination / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", ref], cwd=REPO, stdout=out, check=True)
    source = destination / "source"
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    tree = destination / "tree"
    tree.mkdir()
    (source / "fornet").rename(tree / "fornet")
    package_dirs = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in package_dirs.items():
        if package != folder:
            (source / folder).rename(tree / package.replace(".", "/"))
    return tree


def time_once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from start to exit of ``argv`` run in ``cwd`` (its output discarded); it must exit 0."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(repeat: int, baseline: Path | None, cwd: Path) -> dict[tuple[str, str], list[float]]:
    """``(label, command) -> seconds`` of every run, the candidates interleaved round by round.

    The commands run in ``cwd``, outside the checkout: ``python -m`` puts the working directory first on
    ``sys.path``, which would shadow the baseline's sources with this checkout's ``fornet/``.
    """
    current = dict(os.environ)  # this checkout is the installed (editable) package
    runs: list[tuple[str, str, list[str], dict[str, str]]] = [("python", "python -c pass",
                                                                [sys.executable, "-c", "pass"], current)]
    for args in help_commands():
        text = " ".join(["fornet", *args, "--help"])
        runs.append(("this checkout", text, [sys.executable, "-m", "fornet", *args, "--help"], current))
        if baseline is not None:
            old = {**os.environ, "PYTHONPATH": str(baseline)}
            runs.append(("baseline", text, [sys.executable, "-m", "fornet", *args, "--help"], old))
    times: dict[tuple[str, str], list[float]] = {(label, text): [] for label, text, _, _ in runs}
    for _, _, argv, env in runs:  # warm-up, not recorded: bytecode caches written
        time_once(argv, env, cwd)
    for index in range(repeat):
        order = runs if index % 2 == 0 else runs[::-1]
        for label, text, argv, env in order:
            times[label, text].append(time_once(argv, env, cwd))
    return times


def render(times: dict[tuple[str, str], list[float]], repeat: int, ref: str | None, load: tuple[float, float]) -> str:
    """The results as Markdown."""
    floor = statistics.median(times["python", "python -c pass"])
    lines = [
        "# `fornet --help` and `fornet <command> --help`: time to answer",
        "",
        "Produced by `benchmarks/cli_help.py` (issue 21 item 10: under 0.5 s on a quiet machine; the help imports "
        "no heavy library, checked by `tests/test_cli_help.py`).",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, fornet-deploy {__version__}",
        f"- Load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f}",
        f"- Command: `python benchmarks/cli_help.py --repeat {repeat}"
        + (f" --baseline {ref}`" if ref else "`"),
        f"- Each command {repeat} times in a fresh interpreter (`python -m fornet ... --help`, output discarded) "
        "after one unrecorded warm-up run, the candidates interleaved round by round; wall time from start to exit.",
        "",
        "| command | code | median (s) | spread: min .. max (s) | IQR (s) | minus interpreter start (s) | ratio to "
        "baseline |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (label, text), values in times.items():
        median = statistics.median(values)
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (median, median, median)
        base = times.get(("baseline", text))
        ratio = f"{median / statistics.median(base):.2f}" if base and label == "this checkout" else ""
        lines.append(f"| `{text}` | {label} | {median:.3f} | {min(values):.3f} .. {max(values):.3f} | "
                     f"{q3 - q1:.3f} | {median - floor:.3f} | {ratio} |")
    slowest = max(statistics.median(v) for (label, _), v in times.items() if label == "this checkout")
    verdict = "under" if slowest < LIMIT_S else "over"
    lines += ["", f"Slowest help of this checkout: median {slowest:.3f} s ({verdict} the {LIMIT_S} s limit on this "
                  "machine at this load)."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs of each command (default 15)")
    parser.add_argument("--baseline", metavar="REF", help="also time the commands of this git commit")
    parser.add_argument("--out", type=Path, help="write the Markdown table here (default: print it)")
    return parser.parse_args(argv)


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Time the help texts; print or write the table."""
    args = parse_args(argv)
    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fornet-help-bench-") as tmp:
        baseline = baseline_tree(args.baseline, Path(tmp)) if args.baseline else None
        times = measure(args.repeat, baseline, Path(tmp))
    text = render(times, args.repeat, args.baseline, (start_load, os.getloadavg()[0]))
    if args.out is None:
        print(text, end="")
    else:
        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

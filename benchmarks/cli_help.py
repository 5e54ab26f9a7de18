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
import resource
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


#: One run: wall seconds from start to exit, and the CPU seconds (user + system) the process used.
Sample = tuple[float, float]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_once(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """Wall and CPU seconds of ``argv`` run in ``cwd`` (its output discarded); it must exit 0.

    On a loaded machine the wall time includes waiting for a CPU; the CPU time does not, so it is what the
    command would take on a quiet one (it is single-threaded up to its exit).
    """
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start, _children_cpu() - cpu


def measure(repeat: int, baseline: Path | None, cwd: Path) -> dict[tuple[str, str], list[Sample]]:
    """``(label, command) -> (wall, CPU)`` of every run, the candidates interleaved round by round.

    The commands run in ``cwd``, outside the checkout: ``python -m`` puts the working directory first on
    ``sys.path``, which would shadow the baseline's sources with this checkout's ``fornet/``.
    """
    # This checkout is the installed (editable) package. Bytecode is cached as after any install (the warm-up
    # run writes it), even where the environment sets PYTHONDONTWRITEBYTECODE: compiling every module on
    # every run would be measured instead of the command.
    current = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    runs: list[tuple[str, str, list[str], dict[str, str]]] = [("python", "python -c pass",
                                                                [sys.executable, "-c", "pass"], current)]
    for args in help_commands():
        text = " ".join(["fornet", *args, "--help"])
        runs.append(("this checkout", text, [sys.executable, "-m", "fornet", *args, "--help"], current))
        if baseline is not None:
            old = {**current, "PYTHONPATH": str(baseline)}
            runs.append(("baseline", text, [sys.executable, "-m", "fornet", *args, "--help"], old))
    times: dict[tuple[str, str], list[Sample]] = {(label, text): [] for label, text, _, _ in runs}
    for _, _, argv, env in runs:  # warm-up, not recorded: bytecode caches written
        time_once(argv, env, cwd)
    for index in range(repeat):
        order = runs if index % 2 == 0 else runs[::-1]
        for label, text, argv, env in order:
            times[label, text].append(time_once(argv, env, cwd))
    return times


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} | {min(values):.3f} .. {max(values):.3f}"


def render(times: dict[tuple[str, str], list[Sample]], repeat: int, ref: str | None,
           load: tuple[float, float]) -> str:
    """The results as Markdown."""
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
        "after one unrecorded warm-up run (which writes the bytecode caches, as an install does), the candidates "
        "interleaved round by round. Wall: start to exit. CPU: "
        "user + system seconds of the process, which waiting for a busy CPU does not count: what the command "
        "takes on a quiet machine.",
        "",
        "| command | code | wall median (s) | wall min .. max (s) | CPU median (s) | CPU min .. max (s) | "
        "ratio to baseline (wall / CPU) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (label, text), samples in times.items():
        wall, cpu = [w for w, _ in samples], [c for _, c in samples]
        base = times.get(("baseline", text))
        ratio = ""
        if base and label == "this checkout":
            ratio = (f"{statistics.median(wall) / statistics.median(w for w, _ in base):.2f} / "
                     f"{statistics.median(cpu) / statistics.median(c for _, c in base):.2f}")
        lines.append(f"| `{text}` | {label} | {_summary(wall)} | {_summary(cpu)} | {ratio} |")
    mine = {text: samples for (label, text), samples in times.items() if label == "this checkout"}
    slowest_wall = max(statistics.median(w for w, _ in samples) for samples in mine.values())
    slowest_cpu = max(statistics.median(c for _, c in samples) for samples in mine.values())
    lines += ["", f"Slowest help of this checkout: median {slowest_cpu:.3f} s of CPU "
                  f"({'under' if slowest_cpu < LIMIT_S else 'over'} the {LIMIT_S} s limit), {slowest_wall:.3f} s "
                  "wall at this load."]
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

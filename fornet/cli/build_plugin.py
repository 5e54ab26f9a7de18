"""``fornet build-plugin`` (alias ``fornet-build-plugin``): build the TopKGate TensorRT plugin library on the target.

Examples::

    fornet build-plugin                                   # Jetson: JetPack's TensorRT, this GPU's arch
    fornet build-plugin --tensorrt-root ~/TensorRT-10.3.0.26 --cuda-arch "87;90" --out /opt/fornet/lib
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from fornet.cli.command import Command
from fornet.export.tensorrt.plugin_build import PluginBuild, build_plugin_library, default_cuda_archs, parse_cuda_archs
from fornet.options import add_options, option, options_from_args
from fornet.paths import default_plugin_build_dir, plugin_source_dir
from fornet.runtime.cuda.toolchain import find_nvcc
from fornet.runtime.tensorrt.plugins import PLUGIN_LIBRARY_NAME


@dataclass(frozen=True)
class PluginBuildOptions:
    """The ``fornet build-plugin`` flags (:class:`~fornet.export.tensorrt.plugin_build.PluginBuild` is built
    from them)."""

    tensorrt_root: Path | None = option(None, flag="--tensorrt-root", parse=Path, metavar="DIR",
                                        default_text="$TENSORRT_ROOT, then the system paths of JetPack / the apt "
                                                     "packages",
                                        help="TensorRT with include/ and lib/ (tarball)")
    cuda_arch: str | None = option(None, flag="--cuda-arch", metavar="LIST",
                                   default_text="this GPU, else 75;80;86;87;89;90 and, with CUDA 13, 110",
                                   help="CUDA architectures, e.g. '87' (Orin) or '87;90'")
    out: Path | None = option(None, flag="--out", parse=Path, metavar="DIR",
                              default_text="./build/plugins, in the working directory", help="output directory")
    source: Path | None = option(None, flag="--source", parse=Path, metavar="DIR",
                                 default_text=str(plugin_source_dir()), help="plugin sources")
    static_registration: bool = option(True, flag="--no-static-registration",
                                       help="register only through getCreators (for trtexec --dynamicPlugins / "
                                            "IPluginRegistry.load_library); the default also registers on load")
    jobs: int | None = option(None, flag="--jobs", parse=int, metavar="N", default_text="all cores",
                              help="parallel compile jobs")
    verbose: bool = option(False, flag="--verbose", help="show CMake's output")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Configure and compile the library, then say how to use it."""
    options = options_from_args(PluginBuildOptions, args)
    build = PluginBuild(
        source=options.source or plugin_source_dir(),
        out_dir=options.out or default_plugin_build_dir(),
        tensorrt_root=options.tensorrt_root,
        cuda_archs=tuple(parse_cuda_archs(options.cuda_arch)) if options.cuda_arch else default_cuda_archs(),
        static_registration=options.static_registration,
        nvcc=find_nvcc(),
        jobs=options.jobs,
    )
    library = build_plugin_library(build, verbose=options.verbose)
    print(f"wrote {library}")
    print(f"use it with: fornet-build --plugin {library} ...  |  export FORNET_PLUGIN_LIB={library}  |  "
          f"trtexec --staticPlugins={library}")
    return 0


COMMAND = Command(
    name="build-plugin",
    alias="fornet-build-plugin",
    summary=f"build {PLUGIN_LIBRARY_NAME} (the TopKGate TensorRT plugin) with CMake, on the target",
    description=f"Build {PLUGIN_LIBRARY_NAME} (TensorRT plugin TopKGate/1/fornet) with CMake on this machine, against "
                "its TensorRT (10.3 or newer) and CUDA.",
    add_arguments=lambda parser: add_options(parser, PluginBuildOptions),
    run=run,
    epilog="Needs cmake, nvcc and TensorRT's C++ headers (Jetson: `sudo apt install libnvinfer-dev`). "
           "Load the result with --plugin, $FORNET_PLUGIN_LIB, trtexec --staticPlugins=<lib> or "
           "DeepStream's custom-lib-path.",
)
main = COMMAND.alias_main

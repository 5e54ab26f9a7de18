"""Find and load ``libfornet_plugins.so`` (the fornet::TopKGate TensorRT plugin).

Call :func:`load_plugin_library` before building from an ONNX file with a ``TopKGate`` node and
before deserialising an engine that holds the plugin. A missing library is a hard error naming
every searched path; after loading, the plugin registry must hold creator TopKGate/1/fornet.
"""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

from fornet.contract import TOPK_GATE
from fornet.paths import checkout_plugin_build_dir, default_plugin_build_dir
from fornet.runtime.errors import TensorRTError
from fornet.runtime.tensorrt.env import require_tensorrt

PLUGIN_LIBRARY_NAME = "libfornet_plugins.so"
PLUGIN_ENV_VAR = "FORNET_PLUGIN_LIB"

_BUILD_HINT = "build it on this machine with `fornet-build-plugin` (needs TensorRT's headers, CUDA and CMake)"


class PluginLibraryError(TensorRTError):
    """The plugin library is missing, does not load, or does not register TopKGate."""


def plugin_search_paths(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """The candidate library files, in search order.

    An explicit ``path`` (a file or a directory holding the library) is the only candidate; so is
    ``$FORNET_PLUGIN_LIB`` when set. Otherwise: ``build/plugins`` of the working directory (where
    ``fornet build-plugin`` writes by default), that of the checkout, then the install locations of
    ``cmake --install`` and of system packages.
    """
    explicit = path if path is not None else os.environ.get(PLUGIN_ENV_VAR) or None
    if explicit is not None:
        candidate = Path(explicit).expanduser()
        return [candidate / PLUGIN_LIBRARY_NAME if candidate.is_dir() else candidate]
    builds = dict.fromkeys([default_plugin_build_dir(), checkout_plugin_build_dir()])
    directories = [
        *builds,
        Path("/usr/local/lib"),
        Path(f"/usr/lib/{platform.machine()}-linux-gnu"),
        Path("/usr/lib"),
    ]
    return [directory / PLUGIN_LIBRARY_NAME for directory in directories]


def find_plugin_library(path: str | os.PathLike[str] | None = None) -> Path:
    """The first existing candidate of :func:`plugin_search_paths`.

    Raises:
        PluginLibraryError: none exists; the message lists every searched path.
    """
    candidates = plugin_search_paths(path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    searched = "\n  ".join(str(c) for c in candidates)
    source = (
        "the given path"
        if path is not None
        else f"${PLUGIN_ENV_VAR}"
        if os.environ.get(PLUGIN_ENV_VAR)
        else "the default locations"
    )
    raise PluginLibraryError(
        f"TensorRT plugin library {PLUGIN_LIBRARY_NAME} not found; searched {source}:\n  {searched}\n"
        f"{_BUILD_HINT}, or pass its path with --plugin / ${PLUGIN_ENV_VAR}"
    )


def load_plugin_library(path: str | os.PathLike[str] | None = None) -> Path:
    """Load the plugin library into this process and check that TensorRT sees the creator.

    Imports TensorRT first (its libnvinfer is the one the plugin registers with), loads the library
    with ``ctypes`` (static registration); a library built with ``FORNET_STATIC_REGISTRATION=OFF``
    is then registered through ``IPluginRegistry.load_library``. Loading twice is harmless.

    Returns:
        The resolved path of the loaded library.

    Raises:
        PluginLibraryError: not found (names every searched path), not loadable, or loaded without
            registering TopKGate/1/fornet.
        fornet.runtime.tensorrt.env.TensorRTUnavailableError: TensorRT is not installed.
    """
    require_tensorrt()
    import tensorrt as trt

    library = find_plugin_library(path)
    try:
        ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)  # a second load only bumps a refcount
    except OSError as exc:
        raise PluginLibraryError(
            f"cannot load {library}: {exc}; it must be built on this machine against the installed "
            f"TensorRT {trt.__version__} and CUDA: {_BUILD_HINT}"
        ) from exc
    registry: trt.IPluginRegistry = trt.get_plugin_registry()
    if registry.get_creator(TOPK_GATE.name, TOPK_GATE.plugin_version, TOPK_GATE.plugin_namespace) is None:
        registry.load_library(str(library))
    if registry.get_creator(TOPK_GATE.name, TOPK_GATE.plugin_version, TOPK_GATE.plugin_namespace) is None:
        raise PluginLibraryError(
            f"{library} loaded but TensorRT {trt.__version__} has no plugin creator {TOPK_GATE.creator} "
            f"(built for another TensorRT, or another "
            f"copy registered first?); rebuild it here with `fornet-build-plugin`"
        )
    return library

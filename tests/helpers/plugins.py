"""Helpers of the plugin tests: the harness driver (plugins/harness/plugin_check.py) and nvcc facts."""

from __future__ import annotations

import importlib.util
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
EM_CUDA = 190  # ELF machine of CUDA device code


def load_plugin_check() -> ModuleType:
    """plugins/harness/plugin_check.py (not a package), imported by path."""
    name = "plugin_check"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PLUGINS / "harness" / "plugin_check.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


plugin_check = load_plugin_check()


def nvcc_version(nvcc: Path) -> tuple[int, int]:
    """``(major, minor)`` from ``nvcc --version`` ("release 13.0")."""
    found = re.search(r"release (\d+)\.(\d+)", subprocess.run([str(nvcc), "--version"], capture_output=True,
                                                                text=True, check=True).stdout)
    assert found is not None, "nvcc --version states no release"
    return int(found.group(1)), int(found.group(2))


def cubin_archs(path: Path) -> set[int]:
    """SM versions of the device code (cubin ELF images) embedded in an object or library's fat binary.

    nvcc leaves cubins uncompressed in the fat binary (it compresses PTX only, unless told
    ``-Xfatbin -compress-all``), so each is an ELF image with e_machine EM_CUDA whose e_flags name the
    SM: bits 8-15 in the ABI of CUDA 12.8+ (EI_ABIVERSION >= 8), bits 0-7 before.
    """
    data = path.read_bytes()
    archs = set()
    start = data.find(b"\x7fELF", 1)
    while start >= 0:
        if len(data) >= start + 52 and struct.unpack_from("<H", data, start + 18)[0] == EM_CUDA:
            flags = struct.unpack_from("<I", data, start + 48)[0]
            archs.add((flags >> 8) & 0xFF if data[start + 8] >= 8 else flags & 0xFF)
        start = data.find(b"\x7fELF", start + 1)
    return archs

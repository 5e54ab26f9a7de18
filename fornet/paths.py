"""Where the checkout's own folders are (the plugin sources, the default build folder).

fornet-deploy runs from a checkout (``pip install -e .``): the ``fornet/`` package sits at the
checkout's top level, next to ``plugins/`` and ``build/``. A wheel install has no ``plugins/``;
the commands that need the sources then ask for them explicitly.
"""

from __future__ import annotations

from pathlib import Path

#: The checkout (or site-packages) folder that holds the ``fornet`` package.
CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def plugin_source_dir() -> Path:
    """The ``plugins/`` folder (TensorRT plugin and CUDA kernel sources) of the checkout."""
    return CHECKOUT_ROOT / "plugins"


def default_plugin_build_dir() -> Path:
    """Where ``fornet build-plugin`` puts the library by default: ``build/plugins`` of the working directory
    (never into the checkout unless the command runs there)."""
    return Path.cwd() / "build" / "plugins"


def checkout_plugin_build_dir() -> Path:
    """``<checkout>/build/plugins``: where a build from the checkout's own folder puts the library."""
    return CHECKOUT_ROOT / "build" / "plugins"

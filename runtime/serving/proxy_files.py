"""The files PyTriton deploys as its proxy model in Triton, with :mod:`empty_input_check` in front.

PyTriton sends Triton its proxy model's files (``Model.get_proxy_model_files``: ``file:<version>/<name>``
-> bytes) when a model is bound; :func:`install` makes the server process send PyTriton's ``model.py``
under :data:`~fornet.runtime.serving.empty_input_check.PROXY_MODULE` and the checking model as
``model.py``. Tied to the pinned PyTriton (setup/triton-requirements.txt); :func:`install` refuses to
start on files it does not know rather than serve without the check.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fornet.runtime.serving import empty_input_check
from fornet.runtime.serving.empty_input_check import PROXY_MODULE
from fornet.runtime.serving.errors import ServingError

#: The name Triton's Python backend runs in a model version folder.
ENTRY = "model.py"


def with_empty_input_check(files: dict[str, bytes]) -> dict[str, bytes]:
    """PyTriton's proxy files with its ``model.py`` renamed :data:`PROXY_MODULE` and the checking model as
    ``model.py``; a ServingError when no ``model.py`` is among them (another PyTriton layout)."""
    entries = [key for key in files if key.startswith("file:") and key.endswith(f"/{ENTRY}")]
    if len(entries) != 1:
        raise ServingError(f"PyTriton's proxy model files are not the expected ones ({sorted(files)}): install the "
                           "pinned PyTriton with setup/triton-env.sh")
    entry = entries[0]
    folder = entry[: -len(ENTRY)]
    changed = {key: value for key, value in files.items() if key != entry}
    changed[f"{folder}{PROXY_MODULE}.py"] = files[entry]
    changed[entry] = Path(empty_input_check.__file__).read_bytes()
    return changed


def install() -> None:
    """Make PyTriton deploy every model of this process with the empty-input check in front (once)."""
    from pytriton.models.model import Model

    pytriton_files = Model.get_proxy_model_files
    if hasattr(pytriton_files, "__wrapped__"):
        return

    @functools.wraps(pytriton_files)
    def checked_files(model: Model) -> dict[str, bytes]:
        return with_empty_input_check(pytriton_files(model))

    Model.get_proxy_model_files = checked_files

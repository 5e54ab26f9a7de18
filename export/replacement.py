"""Refuse an export that would replace a different kind of export in its folder (unless ``--overwrite``).

An export publishes its files and removes the managed files it does not produce (so a folder never
mixes two models). Into a folder that holds an earlier export, that is the wanted update when the
new export is of the same kind; it silently breaks whatever consumes the folder when the graph's
interface changes (a raw uint8 BGR input replacing a float one) or files disappear (the FP16 or
INT8 files of the earlier export). Those cases are refused before any work, naming what would
change, unless the caller asks to overwrite.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from fornet.errors import RecordError
from fornet.export.errors import ExportError
from fornet.export.sidecar import ExportDescription, interface, interface_summary
from fornet.runtime.model_io import ModelSidecar


class ReplacedExportError(ExportError):
    """The output folder holds an export of another kind; replacing it needs ``--overwrite``."""


def replacement_changes(out: Path, onnx_name: str, desc: ExportDescription, managed: Collection[str],
                        produced: Collection[str]) -> list[str]:
    """What publishing an export described by ``desc`` (writing ``produced``) into ``out`` would change
    beyond an update of the same kind, in words (empty: nothing, or no earlier export)."""
    changes = []
    sidecar_path = ModelSidecar.path_for(out / onnx_name)
    if sidecar_path.is_file():
        try:
            old = ModelSidecar.load(sidecar_path)
        except RecordError:  # a damaged earlier export is replaced by the new one as before
            old = None
        if old is not None:
            before, after = interface_summary(old.input, old.outputs), interface_summary(*interface(desc, False))
            if before != after:
                changes.append(f"{onnx_name} changes from {before} to {after}")
    lost = [name for name in managed if name not in produced and (out / name).is_file()]
    if lost:
        changes.append(f"{', '.join(lost)} {'is' if len(lost) == 1 else 'are'} removed (this export does not "
                       "produce them)")
    return changes


def check_replacement(out: Path, onnx_name: str, desc: ExportDescription, managed: Collection[str],
                      produced: Collection[str], overwrite: bool) -> None:
    """Refuse (before any work) an export that would replace a different kind of export in ``out``.

    Raises:
        ReplacedExportError: naming each change and the two ways on (nothing was written).
    """
    changes = replacement_changes(out, onnx_name, desc, managed, produced)
    if changes and not overwrite:
        raise ReplacedExportError(
            f"{out} holds an export of another kind, which this export would replace: {'; '.join(changes)}. "
            "Nothing was written: choose another --out for this export, or add --overwrite to replace the "
            "earlier one")

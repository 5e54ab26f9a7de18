"""Read a GLib key file with GLib's own typed getters, as nvinfer and deepstream-app do (``g_key_file_get_*``).

Standard library + PyGObject only, so it also runs as a script under the system Python that has
``gi`` (python3-gi) when the current environment has not::

    /usr/bin/python3 glib_keyfile.py CONFIG SCHEMA_JSON    # prints {"values": ..., "errors": ...} as JSON

SCHEMA maps group -> key -> type (``int``, ``double``, ``bool``, ``string``, ``int-list``,
``double-list``). Every key in the file is read with its schema type; a key the schema does not
know, or a value GLib cannot parse as its type, is reported as an error.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_GETTERS = {"int": "get_integer", "double": "get_double", "bool": "get_boolean", "string": "get_string",
            "int-list": "get_integer_list", "double-list": "get_double_list"}


def read_key_file(path: str, schema: dict[str, dict[str, str]]) -> dict[str, Any]:
    """``{"values": {group: {key: value}}, "errors": [...]}`` of the key file at ``path``."""
    from gi.repository import GLib

    key_file = GLib.KeyFile()
    try:
        key_file.load_from_file(path, GLib.KeyFileFlags.NONE)
    except GLib.Error as exc:
        return {"values": {}, "errors": [f"GLib cannot parse {path}: {exc.message}"]}
    values: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for group in key_file.get_groups()[0]:
        known = next((keys for pattern, keys in schema.items() if group == pattern or
                      (pattern.endswith("*") and group.startswith(pattern[:-1]))), None)
        if known is None:
            errors.append(f"[{group}]: not a group this file type has")
            continue
        values[group] = {}
        for key in key_file.get_keys(group)[0]:
            if key not in known:
                errors.append(f"[{group}] {key}: not a documented key")
                continue
            try:
                value = getattr(key_file, _GETTERS[known[key]])(group, key)
            except GLib.Error as exc:
                errors.append(f"[{group}] {key}: not a valid {known[key]} ({exc.message})")
                continue
            values[group][key] = list(value) if isinstance(value, (list, tuple)) else value
    return {"values": values, "errors": errors}


if __name__ == "__main__":
    print(json.dumps(read_key_file(sys.argv[1], json.loads(sys.argv[2]))))

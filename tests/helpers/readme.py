"""The shell commands of the README's fenced ``sh`` blocks, in order, ready to be run by a test."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_OPTIONAL = re.compile(r"\s*\[[^\]]*\]")


@dataclass(frozen=True)
class ReadmeCommand:
    """One command line as the README shows it (comments dropped, continuation lines joined)."""

    text: str

    def argv(self, placeholders: dict[str, str], values: dict[str, str], extra: list[str]) -> list[str]:
        """The command to run: optional ``[...]`` parts dropped, each placeholder word replaced, the values
        of the flags in ``values`` replaced (smaller sizes and counts), and ``extra`` appended."""
        words = [placeholders.get(word, word) for word in shlex.split(_OPTIONAL.sub("", self.text))]
        for i, word in enumerate(words[:-1]):
            if word in values:
                words[i + 1] = values[word]
        return [*words, *extra]


def readme_commands(readme: Path = README) -> list[ReadmeCommand]:
    """Every command of the README's ``sh`` blocks, in the order a reader meets them."""
    commands = []
    for block in _BLOCK.findall(readme.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            text = line.split(" #", 1)[0].strip()
            if text and not text.startswith("#"):
                commands.append(ReadmeCommand(text))
    return commands

"""WordNet 3.0's nouns, read from the dictionary files Debian's `wordnet-base` installs.

Only what the tags need: a noun synset's words and its hypernyms (the kinds of thing it
is). The files are WordNet's documented database format (wndb(5WN)): in `data.noun`
each synset is one line that starts at the byte offset that is its id (an ImageNet wnid
`n02084071` is offset 2084071), so a synset is one seek and one line, and no index is
loaded. A line reads `offset lex_filenum ss_type w_cnt word lex_id ... p_cnt
[pointer_symbol offset pos source/target]... | gloss`; `@` points to a hypernym, `@i`
to the class of an instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semfs.errors import ModelError

WORDNET_DIR = Path("/usr/share/wordnet")
HYPERNYM_POINTERS = frozenset({"@", "@i"})


@dataclass(frozen=True)
class Synset:
    offset: int
    words: tuple[str, ...]  # as written in WordNet: "domestic_cat", "Felis_domesticus"
    hypernyms: tuple[int, ...]


class NounSynsets:
    """The noun synsets of a WordNet dictionary directory, read on demand and kept."""

    def __init__(self, directory: Path = WORDNET_DIR) -> None:
        path = directory / "data.noun"
        try:
            self._data = path.read_bytes()  # 15 MB, read once: a seek is then a slice
        except OSError as error:
            raise ModelError(
                f"WordNet is not installed ({path}: {error.strerror}): apt-get install wordnet-base"
            ) from error
        self._synsets: dict[int, Synset] = {}

    def synset(self, offset: int) -> Synset:
        known = self._synsets.get(offset)
        if known is not None:
            return known
        end = self._data.find(b"\n", offset)
        fields = self._data[offset : end if end >= 0 else None].split(b" | ", 1)[0].split()
        if not fields or not fields[0].isdigit() or int(fields[0]) != offset:
            raise ModelError(f"no noun synset at offset {offset} of WordNet's data.noun")
        count = int(fields[3], 16)
        words = tuple(fields[4 + 2 * i].decode() for i in range(count))
        at = 4 + 2 * count
        hypernyms = []
        for i in range(int(fields[at])):
            symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
            if symbol.decode() in HYPERNYM_POINTERS and pos == b"n":
                hypernyms.append(int(target))
        found = self._synsets[offset] = Synset(offset, words, tuple(hypernyms))
        return found

    def ancestors(self, offset: int) -> list[int]:
        """The synset and every hypernym above it, nearest first (breadth first)."""
        order, queue = [offset], [offset]
        while queue:
            for parent in self.synset(queue.pop(0)).hypernyms:
                if parent not in order:
                    order.append(parent)
                    queue.append(parent)
        return order

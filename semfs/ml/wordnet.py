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

import mmap
from dataclasses import dataclass
from pathlib import Path

from semfs.errors import ModelError

WORDNET_DIR = Path("/usr/share/wordnet")
HYPERNYM_POINTERS = frozenset({"@", "@i"})


def mapped(path: Path) -> mmap.mmap:
    """A dictionary file mapped read-only: only the pages lookups touch are read, and
    they are the page cache's, shared by every reader of the file."""
    try:
        with path.open("rb") as file:
            return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as error:
        raise not_installed(path, error) from error


def not_installed(path: Path, error: OSError) -> ModelError:
    return ModelError(
        f"WordNet is not installed ({path}: {error.strerror}): apt-get install wordnet-base"
    )


@dataclass(frozen=True)
class Synset:
    offset: int
    words: tuple[str, ...]  # as written in WordNet: "domestic_cat", "Felis_domesticus"
    hypernyms: tuple[int, ...]


class NounSynsets:
    """The noun synsets of a WordNet dictionary directory, read on demand and kept."""

    def __init__(self, directory: Path = WORDNET_DIR) -> None:
        self._data = mapped(directory / "data.noun")  # 15 MB: a seek is then a slice
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


# Morphy's rules for nouns (morph(7WN)): a suffix replaced to reach a base form.
NOUN_SUFFIXES = (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
                 ("shes", "sh"), ("men", "man"), ("ies", "y"))  # fmt: skip


class SortedIndex:
    """One of WordNet's index files (`index.noun`, `index.adj`), looked up in place.

    The file is sorted by lemma, one line each (`lemma pos synset_cnt p_cnt
    [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...`, most frequent sense
    first), so a lookup is a binary search over its bytes, and no table of its lemmas
    is built.
    """

    def __init__(self, path: Path) -> None:
        self._data = mapped(path)
        license_end = self._data.rfind(b"\n  ", 0, 4096) + 1  # the header's lines start "  "
        self._first = self._data.find(b"\n", license_end) + 1

    def synsets(self, lemma: str) -> tuple[int, ...]:
        """The synsets (data file offsets) of a lemma ("fire_hydrant"), most frequent
        sense first; () if the index has no such lemma."""
        key = lemma.encode() + b" "
        low, high = self._first, len(self._data)
        while low < high:  # the line holding `middle`, compared with the key
            middle = (low + high) // 2
            start = self._data.rfind(b"\n", self._first - 1, middle) + 1
            end = self._data.find(b"\n", start)
            line = self._data[start:end]
            if line.startswith(key):
                fields = line.split()
                count = int(fields[2])
                return tuple(int(offset) for offset in fields[len(fields) - count :])
            if line < key:
                low = end + 1
            else:
                high = start
        return ()


class NounIndex:
    """WordNet's noun lemmas and their synsets, reached from the words of a text.

    Inflected forms reach their lemma as WordNet's own morphy does: the irregular
    plurals of `noun.exc`, then the regular suffixes. A word that WordNet knows as an
    adjective in as many senses as a noun ("small", "white", "dark") is taken for the
    adjective: a query's "small stones" names stones, not the small of the back.
    """

    def __init__(self, directory: Path = WORDNET_DIR) -> None:
        self._nouns = SortedIndex(directory / "index.noun")
        self._adjectives = SortedIndex(directory / "index.adj")
        self._irregular: dict[str, list[str]] = {}
        try:
            exceptions = (directory / "noun.exc").read_text()
        except OSError as error:
            raise not_installed(directory / "noun.exc", error) from error
        for line in exceptions.splitlines():
            inflected, *bases = line.split()
            self._irregular.setdefault(inflected, []).extend(bases)

    def synsets(self, lemma: str) -> tuple[int, ...]:
        """The noun synsets of a lemma, most frequent sense first; () if none."""
        return self._nouns.synsets(lemma)

    def lemma_of(self, words: str) -> str | None:
        """The noun lemma a word or phrase ("fire hydrants", "geese") is a form of, or
        None (also for a word that is rather an adjective)."""
        lemma = "_".join(words.lower().split())
        senses = self._nouns.synsets(lemma)
        if senses:
            if "_" not in lemma and len(self._adjectives.synsets(lemma)) >= len(senses):
                return None
            return lemma
        for base in self._irregular.get(lemma, []):
            if self._nouns.synsets(base):
                return base
        for suffix, replacement in NOUN_SUFFIXES:
            if lemma.endswith(suffix) and len(lemma) > len(suffix):
                base = lemma[: len(lemma) - len(suffix)] + replacement
                if self._nouns.synsets(base):
                    return base
        return None

"""Subject-verb-object triplets of a caption ("a man riding a horse on a beach" ->
("man", "riding", "horse")), offline, by rule.

Captions are a narrow kind of English: noun phrases joined by a participle or a
present-tense verb ("two dogs playing in the snow", "a cat sits on a laptop"). A few
rules over closed word lists find their triplets without a parser or a model (the
package index has no official offline English parser; docs/search-by-example.md says
what was weighed). A verb is a word ending in -ing that is not a known -ing noun, or a
common third-person caption verb; its subject is the noun phrase just before it (after
any "is"/"are"), its object the noun phrase after it, past one preposition, which then
belongs to the verb ("sitting on"). Noun phrases lose their articles and numbers.
Captions without a verb (the classifier's "a photo of an espresso") have none.

Triplets are derived from the stored caption whenever they are needed (a result's
`user.semfs.triplets` xattr, the search's re-ranking), so they can never disagree with
it and need no storage of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DETERMINERS = _words(
    "a an the this that these those some many several few two three four five six seven "
    "eight nine ten one its his her their our my your another other each every no"
)
AUXILIARIES = _words("is are was were be being been")
PREPOSITIONS = _words(
    "on in at with under over near next to by of from into onto through across along "
    "behind beside above below between inside outside around down up toward towards "
    "against for off out past"
)
STOPS = _words("and or but while as that which who where when than then")
# -ing words that are nouns (or adjectives) in captions, never the verb.
ING_NOUNS = _words(
    "building ceiling painting clothing ring king wing string thing spring morning evening "
    "wedding pudding railing awning sling icing frosting filling topping stuffing dressing "
    "bedding siding lighting housing parking opening setting swing sibling duckling sapling "
    "seedling dumpling herring whiting bunting ping ding darling shilling farthing "
    "something nothing anything everything during including beginning ending crossing "
    "landing fitting serving drawing"
)
THIRD_PERSON_VERBS = _words(
    "sits stands holds rides eats plays lies walks runs looks flies carries wears jumps "
    "swims drinks reads throws catches chases pulls pushes grazes waits watches drives "
    "hangs leans talks uses has sleeps climbs kicks hits rests floats crosses shows "
    "covers surrounds contains hugs feeds kisses bites licks grabs touches fills"
)
# Their plural-subject forms ("dogs chase"): verbs only after a plural noun, since most
# are nouns too ("a long walk").
BASE_VERBS = _words(
    "sit stand hold ride eat play lie walk run look fly carry wear jump swim drink read "
    "throw catch chase pull push graze wait watch drive hang lean talk use have sleep climb "
    "kick hit rest float cross show cover surround contain hug feed kiss bite lick grab "
    "touch fill"
)
PLURALS = _words("people men women children sheep geese mice cattle they")
_TOKENS = re.compile(r"[a-z]+(?:'[a-z]+)?|[^\sa-z]")


class Triplet(NamedTuple):
    subject: str
    verb: str
    object: str

    def key(self) -> tuple[str, str, str]:
        """What two triplets must share to say the same thing: the heads of the noun
        phrases and the verb's stem ("dogs chasing a cat" ~ "a dog chases the cat")."""
        return head(self.subject), stem(self.verb.split()[0]), head(self.object)


def triplets(caption: str) -> list[Triplet]:
    """The caption's triplets, each once, in the order they appear."""
    tokens = _TOKENS.findall(caption.lower())
    found: list[Triplet] = []
    for position, token in enumerate(tokens):
        following = tokens[position + 1] if position + 1 < len(tokens) else ""
        if not (_is_verb(token) and following != "of") and not _plural_verb(tokens, position):
            continue  # "a painting of", "a serving of": -ing nouns
        subject = _phrase_before(tokens, position)
        verb, start = token, position + 1
        if start < len(tokens) and tokens[start] in PREPOSITIONS:
            verb, start = f"{token} {tokens[start]}", start + 1
        thing = _phrase_after(tokens, start)
        if subject and thing:
            triplet = Triplet(subject, verb, thing)
            if triplet not in found:
                found.append(triplet)
    return found


def _is_verb(token: str) -> bool:
    if token in THIRD_PERSON_VERBS:
        return True
    return len(token) > 4 and token.endswith("ing") and token not in ING_NOUNS


def _plural_verb(tokens: list[str], position: int) -> bool:
    """A base-form verb after a plural subject ("two dogs chase a ball")."""
    if tokens[position] not in BASE_VERBS or position == 0:
        return False
    before = tokens[position - 1]
    return before in PLURALS or (before.endswith("s") and not before.endswith("ss"))


def _is_content(token: str) -> bool:
    return (
        token.isalpha()
        and token not in DETERMINERS
        and token not in AUXILIARIES
        and token not in PREPOSITIONS
        and token not in STOPS
        and not _is_verb(token)
    )


def _phrase_before(tokens: list[str], position: int) -> str:
    end = position
    while end > 0 and tokens[end - 1] in AUXILIARIES:
        end -= 1
    start = end
    while start > 0 and _is_content(tokens[start - 1]):
        start -= 1
    return " ".join(tokens[start:end])


def _phrase_after(tokens: list[str], start: int) -> str:
    while start < len(tokens) and tokens[start] in DETERMINERS:
        start += 1
    end = start
    while end < len(tokens) and _is_content(tokens[end]):
        end += 1
    return " ".join(tokens[start:end])


def head(phrase: str) -> str:
    """The last word of a noun phrase, singular ("two brown dogs" -> "dog")."""
    word = phrase.split()[-1] if phrase else ""
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def stem(verb: str) -> str:
    """A verb's stem, enough to match its forms: riding, rides -> rid; sitting, sits -> sit."""
    for suffix in ("ing", "es", "s"):
        if verb.endswith(suffix) and len(verb) > len(suffix) + 2:
            verb = verb[: -len(suffix)]
            break
    if len(verb) > 2 and verb[-1] == verb[-2] and verb[-1] not in "aeiou":
        verb = verb[:-1]  # sitting -> sitt -> sit
    return verb.rstrip("e")


def agreement(query: Iterable[Triplet], caption: Iterable[Triplet]) -> int:
    """How a caption's triplets bear on a query's: 1 if one says the same thing (same
    subject, verb and object), -1 if one says it the other way round (subject and
    object swapped: "a cat chasing a dog" for "a dog chasing a cat"), else 0."""
    wanted = {t.key() for t in query}
    said = {t.key() for t in caption}
    if wanted & said:
        return 1
    if {(o, v, s) for s, v, o in wanted} & said:
        return -1
    return 0

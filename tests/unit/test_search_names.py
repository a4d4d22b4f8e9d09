"""Names in search/: which are queries, and result names for duplicate basenames."""

from __future__ import annotations

import errno
import io

import pytest
from PIL import Image

from semfs.fs.views.names import query_text, result_names
from semfs.ml.imaging import decode
from semfs.search.searcher import Hit


def test_query_text_takes_what_a_person_types() -> None:
    assert query_text(b"snow on  mountains") == "snow on mountains"
    assert query_text("夕焼けの海".encode()) == "夕焼けの海"
    assert query_text(b"cat 2024") == "cat 2024"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (b".hidden", errno.ENOENT),
        (b".directory", errno.ENOENT),
        (b"desktop.ini", errno.ENOENT),
        (b"Folder.jpg", errno.ENOENT),
        (b"caf\xe9", errno.EINVAL),
        (b"?!...", errno.EINVAL),
        ("🐱🐱".encode(), errno.EINVAL),
        (b"   ", errno.EINVAL),
        (b"x" * 256, errno.ENAMETOOLONG),
    ],
)
def test_names_that_are_not_queries(name: bytes, code: int) -> None:
    with pytest.raises(OSError) as caught:
        query_text(name)
    assert caught.value.errno == code


def hit(file_id: int, path: bytes) -> Hit:
    return Hit(file_id, path, 0.5, "")


def test_duplicate_basenames_get_a_suffix_from_the_file_id_whatever_the_rank() -> None:
    hits = [hit(9, b"b/cat.png"), hit(3, b"a/cat.png"), hit(5, b"dog.jpg"), hit(12, b"c/cat.png")]
    assert result_names(hits) == [b"cat~9.png", b"cat.png", b"dog.jpg", b"cat~12.png"]
    reordered = [hits[3], hits[0], hits[1]]
    assert result_names(reordered) == [b"cat~12.png", b"cat~9.png", b"cat.png"]
    assert result_names([hit(1, b"x/README"), hit(2, b"README")]) == [b"README", b"README~2"]


def test_xmp_description_is_read_as_a_caption() -> None:
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">Lighthouse &amp; waves'
        b"</rdf:li></rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buffer, "JPEG", xmp=xmp)
    buffer.seek(0)
    decoded = decode(buffer, 10_000_000, 10_000_000)
    assert (decoded.embedded_caption, decoded.embedded_source) == ("Lighthouse & waves", "xmp")

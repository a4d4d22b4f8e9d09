"""Names in search/: which are queries, result names for duplicate basenames, and the
rank in front of a result's name."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
from PIL import Image

from semfs.config import Settings
from semfs.daemon.options import parse_mount_options
from semfs.errors import QuietError
from semfs.fs.views.names import query_text, ranked_names, result_names, unranked
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


def test_ranked_names_sort_as_the_ranking_and_are_as_wide_as_the_limit() -> None:
    hits = [hit(7 + rank, b"photos/%d.jpg" % (20 - rank)) for rank in range(12)]
    names = ranked_names(hits, 50)
    assert names[:3] == [b"01 20.jpg", b"02 19.jpg", b"03 18.jpg"]
    assert names[-1] == b"12 9.jpg"  # by name alone, "9.jpg" would sort after "20.jpg"
    assert sorted(names) == names  # what ls and a file manager sorting by name show
    assert sorted(result_names(hits)) != result_names(hits)
    assert ranked_names(hits[:1], 5) == [b"01 20.jpg"]  # never narrower than 2 digits
    assert ranked_names(hits[:2], 100) == [b"001 20.jpg", b"002 19.jpg"]  # @k=100
    assert ranked_names(hits[:2], 1000)[1] == b"0002 19.jpg"
    assert ranked_names(hits, 3)[11] == b"12 9.jpg"  # more hits than the limit: still sorted
    assert ranked_names([], 50) == []


def test_ranked_names_keep_the_suffix_of_shared_names() -> None:
    hits = [hit(9, b"b/cat.png"), hit(3, b"a/cat.png"), hit(5, b"dog.jpg")]
    assert ranked_names(hits, 50) == [b"01 cat~9.png", b"02 cat.png", b"03 dog.jpg"]
    # The same image at another rank: another prefix, the same name behind it.
    assert ranked_names(hits[1:], 50) == [b"01 cat.png", b"02 dog.jpg"]


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        (b"03 cat~42.png", b"cat~42.png"),
        (b"001 dog.jpg", b"dog.jpg"),
        (b"01 01 dog.jpg", b"01 dog.jpg"),  # an image named "01 dog.jpg", ranked
        (b"01 a b\nc.jpg", b"a b\nc.jpg"),
        (b"cat.png", None),
        (b"1 cat.png", None),  # a rank is at least 2 digits
        (b"01cat.png", None),
        (b"01 ", None),
        (b"ab cat.png", None),
    ],
)
def test_the_name_behind_a_rank(name: bytes, plain: bytes | None) -> None:
    assert unranked(name) == plain


def test_result_names_is_a_setting_of_two_values(tmp_path: Path) -> None:
    assert Settings(store=tmp_path).result_names == "ranked"
    assert Settings(store=tmp_path, result_names="plain").result_names == "plain"
    with pytest.raises(QuietError, match="result_names = 'sorted': it is one of ranked, plain"):
        Settings(store=tmp_path, result_names="sorted")
    assert parse_mount_options("result_names=plain").settings == {"result_names": "plain"}
    (tmp_path / ".semfs").mkdir()
    (tmp_path / ".semfs" / "config.toml").write_text('result_names = "plain"\n')
    assert Settings.load(tmp_path).result_names == "plain"
    (tmp_path / ".semfs" / "config.toml").write_text('result_names = "Ranked"\n')
    with pytest.raises(QuietError, match="one of ranked, plain"):
        Settings.load(tmp_path)


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

"""The search-by-example view: `similar/<example>/` lists the stored images that look
most like the example, best first, by image features (semfs/ml/image_features.py) in
their own index; each named behind its rank, as in search/ (`01 cat.png`).

An example is made in one of two ways, and kept until `rmdir` (it survives remounts):
- `mkdir similar/<name of a stored image>`: that image (a name as a view lists it picks
  the same one: `03 cat~42.png` or `cat~42.png` picks file 42, the rank is dropped
  when no image has the name as given; a plain name shared by several images picks
  the oldest). It is left out of its own results.
- `cp photo.jpg similar/`: an image from anywhere, not added to the store. It is
  written to an unlinked file in the state directory; when the copy is closed its
  features are computed (a bad image fails the close with EINVAL, and the log says
  why), only they are kept, and the name becomes the example's directory.

Either name may end with modifiers, as a query's: `mkdir "similar/cat.png @k=5 @t=1.2
year:2023"` (semfs/search/query.py, `split_example`); a bad value is refused with EINVAL.

Its examples and their results are a QueryTree (query_tree.py), as search/'s queries
are, with another source of results, so result entries, reads, xattrs and the refresh
when the index changes work the same way. Only the trio thread touches this state;
decoding and the model run in worker threads.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pyfuse3
import trio

from semfs.catalog.examples import Example
from semfs.errors import ModelError
from semfs.fs.access import Reach
from semfs.fs.attributes import entry_attributes, negative_entry
from semfs.fs.inodes import ROOT_INODE, InodeTable
from semfs.fs.views.names import NAME_MAX, is_probe, unranked
from semfs.fs.views.query_tree import QueryTree
from semfs.fs.views.tree_view import TreeView
from semfs.ml.feature_projection import POOLED_DIMENSIONS
from semfs.ml.image_features import image_features_name
from semfs.ml.imaging import BadImage, decode
from semfs.search.engine import Engine, NotReady
from semfs.search.query import Query, QuerySyntaxError, split_example
from semfs.search.searcher import Hit
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # an example larger than this is refused (EFBIG)
_DISAMBIGUATED = re.compile(rb"(.*)~(\d+)(\.[^.~]*)?")  # cat~42.png, as views list them


@dataclass
class _Upload:
    """An image being copied into similar/: its bytes live in an unlinked file."""

    inode: int
    name: bytes
    fd: int
    lookups: int = 1  # create counts as a lookup
    is_open: bool = True
    written: bool = False  # since its features were last computed
    closed: os.stat_result | None = None  # its last attributes, once released


class ExampleSearch:
    """The results of similar/: the images nearest an example in the images' space."""

    def __init__(self, engine: Engine, examples: dict[bytes, Example]) -> None:
        self._engine = engine
        self._examples = examples  # the view's, by name

    def version(self) -> int:
        images = self._engine.images
        try:
            self._engine.wait_ready(timeout=0)
        except NotReady:
            return -1
        return -1 if images is None else images.index.version

    def search(self, text: str) -> tuple[list[Hit], int]:
        self._engine.wait_ready()
        images = self._engine.images
        if images is None:
            raise NotReady("search by example is off (the image_features setting is empty)")
        version = images.index.version  # before searching: a change during it triggers another
        started = time.perf_counter()
        example = self._examples.get(os.fsencode(text))
        vector = self._example_vector(example, images.model) if example is not None else None
        if example is None or vector is None:
            return [], version  # its features are not computed yet: refreshed when they are
        modifiers = _modifiers_of(text)
        with self._engine.foreground.searching():  # ingest's threads step aside meanwhile
            hits = images.searcher.search_example(
                vector, modifiers, self._engine.settings.top_k, images.max_distance,
                leave_out=example.file_id,
            )  # fmt: skip
        log.info("similar %r: %d results in %.1f ms",
                 text, len(hits), (time.perf_counter() - started) * 1000)  # fmt: skip
        return hits, version

    def _example_vector(self, example: Example, model: str) -> np.ndarray | None:
        if example.file_id is not None:
            stored = self._engine.catalog.examples.image_vector_of(example.file_id, model)
            return None if stored is None else np.frombuffer(stored, dtype=np.float32)
        unreduced = image_features_name(self._engine.settings.image_features, POOLED_DIMENSIONS)
        if example.vector is not None and example.embedder == unreduced and model != unreduced:
            # Copied in before the features were reduced (ingest converts the catalog's).
            row = np.frombuffer(example.vector, dtype=np.float32)[None, :]
            reduced: np.ndarray = self._engine.image_features().from_pooled(row)[0]
            return reduced
        if example.vector is None or example.embedder != model:
            log.warning("example %r was made with %s, not %s: copy it in again",
                        os.fsdecode(example.name), example.embedder, model)  # fmt: skip
            return None
        return np.frombuffer(example.vector, dtype=np.float32)


class SimilarView(TreeView):
    def __init__(
        self, engine: Engine, inodes: InodeTable, store: BackingStore, entry_timeout: float
    ) -> None:
        self.name = os.fsencode(engine.settings.similar_dir_name)
        self._engine = engine
        self._catalog = engine.catalog
        self._settings = engine.settings
        self._inodes = inodes
        self._store = store
        self._entry_timeout = entry_timeout
        self._limiter = trio.CapacityLimiter(4)
        self._examples: dict[bytes, Example] = {}
        source = ExampleSearch(engine, self._examples)
        ranked = engine.settings.result_names == "ranked"
        self.tree = QueryTree(
            inodes, store, entry_timeout, source, self._limiter, engine.settings.allow_other,
            rank_limit=self._limit if ranked else None,
        )  # fmt: skip
        self.root_inode = self.tree.root_inode
        self._uploads: dict[int, _Upload] = {}  # by descriptor (= file handle)
        self._upload_by_inode: dict[int, _Upload] = {}
        for example in self._catalog.examples.examples():
            self._examples[example.name] = example
            self.tree.folder(example.name, os.fsdecode(example.name)).saved = True

    # --- the tree ----------------------------------------------------------------------

    def owns(self, inode: int) -> bool:
        return inode in self._upload_by_inode or self.tree.owns(inode)

    def _upload_named(self, name: bytes) -> _Upload | None:
        """The copy of that name still being written (a closed one may linger until the
        kernel forgets its inode, but no longer holds the name)."""
        open_uploads = (u for u in self._upload_by_inode.values() if u.is_open)
        return next((u for u in open_uploads if u.name == name), None)

    def _is_example(self, name: bytes) -> bool:
        return self.tree.is_saved(name)

    def _limit(self, text: str) -> int:
        """The most results an example lists: its own `@k=`, else top_k."""
        return _modifiers_of(text).k or self._settings.top_k

    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        if parent == ROOT_INODE:
            return self.tree.look_up_root()
        if parent != self.root_inode:
            return await self.tree.look_up_in_folder(parent, name)
        if self._is_example(name):  # also a copy made an example, before it is released
            return self.tree.look_up_folder(self.tree.folders[name])
        upload = self._upload_named(name)
        if upload is not None:
            upload.lookups += 1
            return self._upload_attributes(upload)
        if is_probe(name):
            return negative_entry(self._entry_timeout)
        raise FileNotFoundError(errno.ENOENT, "no such example")

    async def getattr(self, inode: int) -> pyfuse3.EntryAttributes:
        upload = self._upload_by_inode.get(inode)
        if upload is not None:
            return self._upload_attributes(upload)
        return self.tree.getattr(inode)

    async def listing(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        entries = await self.tree.listing(inode)
        if inode == self.root_inode:
            writing = [u for u in self._upload_by_inode.values()
                       if u.is_open and not self._is_example(u.name)]  # fmt: skip
            entries += [(u.name, self._upload_attributes(u)) for u in writing]
        return entries

    def counted(self, inode: int) -> None:
        if inode in self._upload_by_inode:
            self._upload_by_inode[inode].lookups += 1
        else:
            self.tree.counted(inode)

    def forget(self, inode: int, count: int) -> None:
        upload = self._upload_by_inode.get(inode)
        if upload is None:
            self.tree.forget(inode, count)
            return
        upload.lookups = max(0, upload.lookups - count)
        if upload.lookups == 0 and not upload.is_open:
            del self._upload_by_inode[inode]

    # --- examples of stored images -------------------------------------------------------

    async def mkdir(self, parent: int, name: bytes, reach: Reach) -> pyfuse3.EntryAttributes:
        if parent != self.root_inode:
            raise OSError(errno.EROFS, "only similar/ holds examples")
        image_name = self._check_new_name(name)
        file_id = await trio.to_thread.run_sync(
            self._stored_image, image_name, reach, limiter=self._limiter
        )
        return await self._save(Example(name, file_id, None, None))

    def _check_new_name(self, name: bytes) -> bytes:
        """The name of the image `name` names, without the modifiers it ends with."""
        if len(name) > NAME_MAX:
            raise OSError(errno.ENAMETOOLONG, f"a name holds at most {NAME_MAX} bytes")
        if self._is_example(name) or self._upload_named(name) is not None:
            raise FileExistsError(errno.EEXIST, "an example of this name exists")
        try:
            image_name, _ = split_example(os.fsdecode(name))
        except QuerySyntaxError as error:
            log.warning("similar/%s refused (EINVAL): %s", os.fsdecode(name), error)
            raise OSError(errno.EINVAL, str(error)) from None
        return os.fsencode(image_name)

    def _stored_image(self, name: bytes, reach: Reach) -> int:
        """The id of the indexed image `name` names, among those the caller may read
        (worker thread): by the name as given, else by the name behind its rank (a name
        as a view lists it, `03 cat.png`)."""
        plain = unranked(name)
        for candidate in (name,) if plain is None else (name, plain):
            file_id = self._readable_image(candidate, reach)
            if file_id is not None:
                return file_id
        log.warning("similar/%s refused: no indexed image of that name", os.fsdecode(name))
        raise FileNotFoundError(errno.ENOENT, "no indexed image of that name")

    def _readable_image(self, name: bytes, reach: Reach) -> int | None:
        """The image a result name picks (`cat~42.png`: file 42; `cat.png`: the oldest of
        that name the caller may read); None if none (worker thread)."""
        match = _DISAMBIGUATED.fullmatch(name)
        if match is not None:
            basename = match.group(1) + (match.group(3) or b"")
            wanted = int(match.group(2))
            named = self._catalog.examples.indexed_named(basename)
            if any(file_id == wanted and reach.may_read(path) for file_id, path in named):
                return wanted
        named = self._catalog.examples.indexed_named(name)
        return next((file_id for file_id, path in named if reach.may_read(path)), None)

    async def rmdir(self, parent: int, name: bytes) -> None:
        if parent != self.root_inode:
            raise OSError(errno.EROFS, "results cannot be removed here")
        folder = self.tree.folders.get(name)
        if folder is None or not folder.saved:
            raise FileNotFoundError(errno.ENOENT, "no such example")
        await trio.to_thread.run_sync(
            self._catalog.examples.remove_example, name, limiter=self._limiter
        )
        self._examples.pop(name, None)
        folder.saved = False
        self.tree.root_changed()
        log.info("removed example %r", os.fsdecode(name))
        self.tree.drop_folder_if_unused(folder)

    async def _save(self, example: Example) -> pyfuse3.EntryAttributes:
        await trio.to_thread.run_sync(
            self._catalog.examples.save_example, example.name, example.file_id, example.embedder,
            example.vector, limiter=self._limiter,
        )  # fmt: skip
        self._examples[example.name] = example
        folder = self.tree.folder(example.name, os.fsdecode(example.name))
        folder.saved = True
        folder.version = -1  # a new example under an old name: search again
        self.tree.root_changed()
        log.info("saved example %r", os.fsdecode(example.name))
        return self.tree.look_up_folder(folder)

    # --- examples copied in --------------------------------------------------------------

    async def create(
        self, parent: int, name: bytes, flags: int
    ) -> tuple[int, pyfuse3.EntryAttributes]:
        if parent != self.root_inode:
            raise OSError(errno.EROFS, "results are read-only")
        self._check_new_name(name)
        directory = self._settings.uploads_dir
        directory.mkdir(mode=0o700, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=directory, prefix="example-")
        os.unlink(path)  # nothing to clean up after a crash: the bytes go with the descriptor
        upload = _Upload(self._inodes.allocate(), name, fd)
        self._uploads[fd] = upload
        self._upload_by_inode[upload.inode] = upload
        return fd, self._upload_attributes(upload)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        if offset + len(data) > MAX_UPLOAD_BYTES:
            raise OSError(errno.EFBIG, "an example image is at most 512 MiB")
        upload = self._uploads[fh]
        upload.written = True
        return await trio.to_thread.run_sync(os.pwrite, fh, data, offset, limiter=self._limiter)

    async def truncate(self, inode: int, size: int | None) -> pyfuse3.EntryAttributes:
        upload = self._upload_by_inode.get(inode)
        if upload is None or not upload.is_open:
            raise OSError(errno.EROFS, "the views are read-only")
        if size is not None:
            os.ftruncate(upload.fd, size)
            upload.written = True
        return self._upload_attributes(upload)  # times and modes are not kept: only features

    async def flush(self, fh: int) -> None:
        """The copy is closed: its features become the example (errors reach close())."""
        upload = self._uploads[fh]
        # A copy of an empty file writes nothing, yet is no image either: decoding refuses
        # it (EINVAL, "empty file"), as any other bad image, rather than a silent success.
        # (A shell's `> similar/x.jpg` closes its duplicate first, unseen: it ignores that
        # close, and the image written after it is taken at the last.)
        written = upload.written and os.fstat(fh).st_size > 0
        if written or not self._is_example(upload.name):
            await self._make_example(upload)

    async def release(self, fh: int) -> None:
        upload = self._uploads.pop(fh)
        try:
            if upload.written and os.fstat(fh).st_size > 0:
                await self._make_example(upload)  # written after its last flush (mmap)
        except OSError as error:
            log.warning("similar/%s: %s", os.fsdecode(upload.name), error)
        finally:
            upload.closed = os.fstat(fh)
            os.close(fh)
            upload.is_open = False
            if upload.lookups == 0:
                del self._upload_by_inode[upload.inode]

    async def _make_example(self, upload: _Upload) -> None:
        upload.written = False
        try:
            model, vector = await trio.to_thread.run_sync(
                self._features_of, upload.fd, limiter=self._limiter
            )
        except BadImage as error:
            log.warning("similar/%s refused (EINVAL): %s", os.fsdecode(upload.name), error)
            raise OSError(errno.EINVAL, str(error)) from None
        except ModelError as error:
            log.error(
                "similar/%s: the image features model cannot load: %s",
                os.fsdecode(upload.name),
                error,
            )
            raise OSError(errno.EAGAIN, str(error)) from None
        await self._save(Example(upload.name, None, model, vector))
        # The kernel holds the name as this file; from now on it is the example's folder.
        pyfuse3.invalidate_entry_async(self.root_inode, upload.name, ignore_enoent=True)

    def _features_of(self, fd: int) -> tuple[str, bytes]:
        """Decode the copied image and compute its features (worker thread)."""
        with os.fdopen(os.dup(fd), "rb") as file:
            limits = (self._settings.max_image_pixels, self._settings.max_full_decode_pixels)
            image = decode(file, *limits).image
        features = self._engine.image_features()
        return features.name, features.features([image])[0].tobytes()

    def _upload_attributes(self, upload: _Upload) -> pyfuse3.EntryAttributes:
        info = upload.closed or os.fstat(upload.fd)
        attr = entry_attributes(upload.inode, info, 0, 0)  # never cached: it becomes a folder
        attr.st_mode = stat.S_IFREG | 0o644
        attr.st_nlink = 1
        root = self._store.lstat(b"")
        attr.st_uid, attr.st_gid = root.st_uid, root.st_gid
        return attr


def _modifiers_of(name: str) -> Query:
    """The modifiers an example's name ends with (checked when it was made; an example
    saved before names were read this way keeps none that would be refused now)."""
    try:
        return split_example(name)[1]
    except QuerySyntaxError:
        return Query()

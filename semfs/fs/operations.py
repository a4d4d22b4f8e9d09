"""The FUSE adapter: each handler translates one request into calls on `Passthrough` (real
files) or a `VirtualView`, and the result into pyfuse3 types.

Errors are mapped at this one boundary, `fuse_errors` (boundary.py): `OSError` becomes
`FUSEError(errno)`, SQLite's disk errors theirs (ENOSPC, EIO, EAGAIN); anything else is
logged and answered with EIO. The root also answers the daemon's reserved xattrs
(root_reports.py).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import pyfuse3
import trio

from semfs.config import Settings
from semfs.fs.access import ACCESS_ACL, Caller, Reach, check_view_entry
from semfs.fs.attributes import entry_attributes, negative_entry
from semfs.fs.boundary import fuse_errors
from semfs.fs.descriptions import XATTR_TEXT, StoredDescriptions, refuse_computed
from semfs.fs.inodes import ROOT_INODE
from semfs.fs.passthrough import AttributeChanges, Passthrough
from semfs.fs.readahead import widen_readahead
from semfs.fs.root_reports import RootReports
from semfs.fs.views.registry import ViewRegistry, VirtualView

log = logging.getLogger(__name__)


@dataclass
class _ViewListing:
    view: VirtualView
    inode: int
    reach: Reach  # of the caller who opened it: it sees only what it could read
    entries: Sequence[tuple[bytes, pyfuse3.EntryAttributes]] = field(default_factory=list)
    shown: list[tuple[bytes, pyfuse3.EntryAttributes]] = field(default_factory=list)


class SemfsOperations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False  # per mount: see __init__
    enable_acl = False

    def __init__(
        self,
        settings: Settings,
        passthrough: Passthrough,
        views: ViewRegistry | None = None,
        reports: RootReports | None = None,
        descriptions: StoredDescriptions | None = None,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._fs = passthrough
        self._reports = reports or RootReports()
        self._descriptions = descriptions  # the catalog's, as xattrs of stored images
        # pyfuse3 reads this when the kernel connects; the passthrough opens backing files
        # to match it.
        self.enable_writeback_cache = passthrough.writeback_cache
        self.enable_acl = settings.posix_acl
        self._views = views or ViewRegistry()
        self._view_listings: dict[int, _ViewListing] = {}
        self._view_files: set[int] = set()  # handles (= descriptors) of files opened in views
        self._view_uploads: dict[int, VirtualView] = {}  # handles of files created in views
        self._view_io = trio.CapacityLimiter(settings.io_threads)
        self._view_handles = iter(range(1 << 62, 1 << 63))  # apart from real dir handles

    def init(self) -> None:
        # Called inside the INIT handshake, which sets the readahead window when its reply
        # is sent: widen it in a task that runs after that.
        trio.lowlevel.spawn_system_task(self._after_init)

    async def _after_init(self) -> None:
        try:
            widen_readahead(str(self._settings.store))
        except Exception:  # a system task that raises would end the mount
            log.exception("tuning the mount failed")

    def attributes(self, number: int, info: os.stat_result) -> pyfuse3.EntryAttributes:
        # Told as a deletion, the kernel evicts the inode once unused (its only name);
        # a plain invalidation would leave the inode, and its stale size, cached.
        deleted = number if info.st_nlink == 1 else 0
        for parent, name in self._fs.stale_links(number, info):
            pyfuse3.invalidate_entry_async(parent, name, deleted, ignore_enoent=True)
        return entry_attributes(
            number, info, self._settings.entry_timeout, self._settings.attr_timeout
        )

    def _reach(self, ctx: pyfuse3.RequestContext) -> Reach:
        return Reach(self._fs.store, Caller.of(ctx.uid, ctx.gid, ctx.pid), self.enable_acl)

    def _check_view_entry(self, view: VirtualView, inode: int, ctx: pyfuse3.RequestContext) -> None:
        real_path = view.real_path(inode)
        if real_path is not None:  # folders show no stored file: nothing to ask the store
            check_view_entry(self._reach(ctx), real_path)

    def _refuse_view(self, *inodes: int) -> None:
        """Views are read-only: changing anything in them is EROFS."""
        if any(self._views.owner(inode) for inode in inodes):
            raise pyfuse3.FUSEError(errno.EROFS)

    # --- lookup and attributes --------------------------------------------------------

    @fuse_errors
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        view = self._views.owner(parent_inode)
        if view is None and parent_inode == ROOT_INODE:
            view = self._views.at_root(name)
        if view is not None:
            try:
                attributes = await view.lookup(parent_inode, name, ctx.pid)
            except FileNotFoundError:  # results come and go: remember absence briefly
                return negative_entry(min(1.0, self._settings.entry_timeout))
            real_path = view.real_path(attributes.st_ino) if attributes.st_ino else None
            if real_path is not None and not self._reach(ctx).may_read(real_path):
                view.forget(attributes.st_ino, 1)  # the lookup it counted
                return negative_entry(0)  # absent for this caller only: not cached
            return attributes
        try:
            return self.attributes(*self._fs.lookup(parent_inode, name))
        except FileNotFoundError:
            return negative_entry(self._settings.entry_timeout)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for number, count in inode_list:
            try:
                view = self._views.owner(number)
                if view is not None:
                    view.forget(number, count)
                else:
                    self._fs.inodes.forget(number, count)
            except Exception:  # forget must never raise
                log.exception("forget(%d, %d) failed", number, count)

    @fuse_errors
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        view = self._views.owner(inode)
        if view is not None:
            self._check_view_entry(view, inode, ctx)
            return await view.getattr(inode)
        return self.attributes(inode, self._fs.getattr(inode))

    @fuse_errors
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        view = self._views.owner(inode)
        if view is not None:
            return await view.truncate(inode, attr.st_size if fields.update_size else None)
        changes = AttributeChanges(
            mode=attr.st_mode if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
        )
        return self.attributes(inode, self._fs.setattr(inode, changes, fh))

    @fuse_errors
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        self._refuse_view(inode)
        return self._fs.readlink(inode)

    # --- names ------------------------------------------------------------------------

    def _refuse_view_name(self, parent: int, *names: bytes) -> None:
        """Real entries cannot be made under a view's name in the root."""
        if parent == ROOT_INODE and any(name in self._views.names for name in names):
            raise pyfuse3.FUSEError(errno.EEXIST)

    def _refuse_view_root(self, parent: int, *names: bytes) -> None:
        """The views' folders in the root stay: EBUSY, what the kernel answers for a mount
        point (rmdir, rename and unlink(2) name it), so rmdir and mv say "Device or
        resource busy". EEXIST made mv report "cannot overwrite non-directory"."""
        if parent == ROOT_INODE and any(name in self._views.names for name in names):
            raise pyfuse3.FUSEError(errno.EBUSY)

    @fuse_errors
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        view = self._views.owner(parent_inode)
        if view is not None:
            return await view.mkdir(parent_inode, name, self._reach(ctx))
        self._refuse_view_name(parent_inode, name)
        return self.attributes(*self._fs.mkdir(parent_inode, name, mode, ctx))

    @fuse_errors
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_view(parent_inode)
        self._refuse_view_name(parent_inode, name)
        return self.attributes(*self._fs.mknod(parent_inode, name, mode, rdev, ctx))

    @fuse_errors
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_view(parent_inode)
        self._refuse_view_name(parent_inode, name)
        return self.attributes(*self._fs.symlink(parent_inode, name, target, ctx))

    @fuse_errors
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_view(inode, new_parent_inode)
        self._refuse_view_name(new_parent_inode, new_name)
        return self.attributes(*self._fs.link(inode, new_parent_inode, new_name))

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._refuse_view(parent_inode)
        self._refuse_view_root(parent_inode, name)
        self._fs.unlink(parent_inode, name)

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        view = self._views.owner(parent_inode)
        if view is not None:
            await view.rmdir(parent_inode, name)
            return
        self._refuse_view_root(parent_inode, name)
        self._fs.rmdir(parent_inode, name)

    @fuse_errors
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self._refuse_view(parent_inode_old, parent_inode_new)
        self._refuse_view_root(parent_inode_old, name_old)
        self._refuse_view_root(parent_inode_new, name_new)
        self._fs.rename(parent_inode_old, name_old, parent_inode_new, name_new, flags)

    # --- file data ----------------------------------------------------------------------

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        view = self._views.owner(inode)
        if view is not None:
            self._check_view_entry(view, inode, ctx)
            fd = await view.open(inode, flags)
            self._view_files.add(fd)
            return pyfuse3.FileInfo(fh=fd)
        return pyfuse3.FileInfo(fh=self._fs.open(inode, flags))

    @fuse_errors
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        view = self._views.owner(parent_inode)
        if view is not None:
            fd, attributes = await view.create(parent_inode, name, flags)
            self._view_uploads[fd] = view
            return pyfuse3.FileInfo(fh=fd), attributes
        self._refuse_view_name(parent_inode, name)
        fh, number, info = self._fs.create(parent_inode, name, mode, flags, ctx)
        return pyfuse3.FileInfo(fh=fh), self.attributes(number, info)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        if fh in self._view_files:
            return await trio.to_thread.run_sync(os.pread, fh, size, off, limiter=self._view_io)
        # pyfuse3 takes any contiguous buffer (PyObject_GetBuffer), so the bytearray of a
        # cached read goes out without another copy.
        return cast(bytes, await self._fs.read(fh, off, size))

    @fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        if fh in self._view_uploads:
            return await self._view_uploads[fh].write(fh, off, buf)
        return await self._fs.write(fh, off, buf)

    @fuse_errors
    async def flush(self, fh: int) -> None:
        # Real files: nothing is buffered here, writes go straight to the backing file.
        if fh in self._view_uploads:
            await self._view_uploads[fh].flush(fh)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        if fh not in self._view_uploads:  # a view's file is not kept: nothing to sync
            await self._fs.fsync(fh, datasync)

    @fuse_errors
    async def release(self, fh: int) -> None:
        if fh in self._view_uploads:
            await self._view_uploads.pop(fh).release(fh)
            return
        if fh in self._view_files:
            self._view_files.discard(fh)
            os.close(fh)
            return
        self._fs.release(fh)

    # --- directories ----------------------------------------------------------------------

    @fuse_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        view = self._views.owner(inode)
        if view is None:
            return self._fs.opendir(inode)
        fh = next(self._view_handles)
        self._view_listings[fh] = _ViewListing(view, inode, self._reach(ctx))
        return fh

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        if fh in self._view_listings:
            await self._readdir_view(self._view_listings[fh], start_id, token)
            return
        listing = await self._fs.list_directory(fh, restart=start_id == 0)
        assert listing.entries is not None
        entries = listing.entries
        hidden = self._views.names if listing.inode == ROOT_INODE else frozenset()
        for index in range(start_id, len(entries)):
            name, info = entries[index]
            if name in hidden:
                continue
            entry = self._fs.listed_entry(listing.inode, name, info)
            attributes = self.attributes(entry.number, info)
            if not pyfuse3.readdir_reply(token, name, attributes, index + 1):
                if entry.counts_lookup:
                    self._fs.inodes.forget(entry.number, 0)  # drops it unless held elsewhere
                return
            if entry.counts_lookup:
                self._fs.inodes.increment(entry.number)
        if listing.inode == ROOT_INODE:
            await self._readdir_root_views(len(entries), start_id, token)

    async def _readdir_root_views(
        self, first_id: int, start_id: int, token: pyfuse3.ReaddirToken
    ) -> None:
        """The views' directories follow the store's own entries in the root listing."""
        for index, view in enumerate(self._views.all(), start=first_id):
            if index < start_id:
                continue
            attr = await view.getattr(view.root_inode)
            if not pyfuse3.readdir_reply(token, view.name, attr, index + 1):
                return
            view.counted(view.root_inode)

    async def _readdir_view(
        self, listing: _ViewListing, start_id: int, token: pyfuse3.ReaddirToken
    ) -> None:
        if start_id == 0:
            previous, listing.entries = listing.entries, []
            listing.view.release_listing(previous)
            listing.entries = await listing.view.listing(listing.inode)
            listing.shown = [
                (name, attr)
                for name, attr in listing.entries
                if (path := listing.view.real_path(attr.st_ino)) is None
                or listing.reach.may_read(path)
            ]
        for index in range(start_id, len(listing.shown)):
            name, attr = listing.shown[index]
            if not pyfuse3.readdir_reply(token, name, attr, index + 1):
                return
            listing.view.counted(attr.st_ino)

    @fuse_errors
    async def releasedir(self, fh: int) -> None:
        view_listing = self._view_listings.pop(fh, None)
        if view_listing is None:
            self._fs.releasedir(fh)
        else:
            view_listing.view.release_listing(view_listing.entries)

    @fuse_errors
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        pass  # directory changes are made with synchronous syscalls on the backing store

    @fuse_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        info = self._fs.statfs()
        data = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                     "f_ffree", "f_favail", "f_namemax"):  # fmt: skip
            setattr(data, name, getattr(info, name))
        return data

    # --- extended attributes ------------------------------------------------------------

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        view = self._views.owner(inode)
        if view is not None:
            self._check_view_entry(view, inode, ctx)
            real_path = view.real_path(inode)
            if name == ACCESS_ACL and self.enable_acl and real_path is not None:
                # The kernel checks a result entry as it checks the stored file: by its
                # mode bits (the entry's attributes are the file's) and by this ACL.
                return self._fs.acl_of(real_path)
            if name == XATTR_TEXT and real_path is not None and self._descriptions is not None:
                # The words read in the image it shows: the stored image's, from the
                # catalog (in a worker thread), as the entry's attributes are the file's.
                return await self._descriptions.value([real_path], name)
            return view.getxattr(inode, name)
        if inode == ROOT_INODE and (report := self._reports.read(name, ctx.uid)) is not None:
            return report
        if self._descriptions is not None:
            return await self._descriptions.getxattr(self._fs, inode, name)
        return self._fs.getxattr(inode, name)

    @fuse_errors
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        self._refuse_view(inode)
        if inode == ROOT_INODE:
            self._reports.refuse_change(name)
        refuse_computed(name)
        self._fs.setxattr(inode, name, value)

    @fuse_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        view = self._views.owner(inode)
        if view is not None:
            self._check_view_entry(view, inode, ctx)
            return view.listxattr(inode)
        if self._descriptions is not None:
            return await self._descriptions.listxattr(self._fs, inode)
        return self._fs.listxattr(inode)

    @fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._refuse_view(inode)
        if inode == ROOT_INODE:
            self._reports.refuse_change(name)
        refuse_computed(name)
        self._fs.removexattr(inode, name)

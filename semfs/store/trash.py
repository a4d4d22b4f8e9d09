"""The trash folders file managers keep in the store, by the freedesktop.org trash spec.

The mount's top directory is the store's root, so a file manager's Delete (gio, PCManFM)
moves a file to `.Trash-<uid>/files/` there, with its `.trashinfo` in `info/`, or to
`.Trash/<uid>/` when an administrator made a shared, sticky `.Trash`. What is in them
was deleted: it is kept until the trash is emptied, but never catalogued, so it is
never searched, listed in a view or ingested. The same names below the root are
ordinary folders.
"""

from __future__ import annotations

import re

_TRASH_FOLDER = re.compile(rb"\.Trash(-[0-9]+)?")


def is_trash_folder(name: bytes) -> bool:
    """Whether `name`, in the store's root, is a trash folder."""
    return _TRASH_FOLDER.fullmatch(name) is not None


def in_trash(path: bytes) -> bool:
    """Whether the store path `path` is a trash folder or inside one."""
    return is_trash_folder(path.split(b"/", 1)[0])

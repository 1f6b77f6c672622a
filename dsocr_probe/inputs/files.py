"""Read a user's file only when it is a regular file: a device, a named pipe or a socket can block
forever or never end. Why a file is not read is a catalog message (it goes into the dataset probe's
table), worded in the report's language."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from ..messages import M, N_

NOT_FOUND = M(N_("file does not exist"))


def special_kind(mode: int) -> dict | None:
    """What a non-regular file is, as a message; None for a regular file."""
    for test, name in ((stat.S_ISDIR, N_("a folder")), (stat.S_ISFIFO, N_("a named pipe")),
                       (stat.S_ISSOCK, N_("a socket")), (stat.S_ISCHR, N_("a character device")),
                       (stat.S_ISBLK, N_("a block device"))):
        if test(mode):
            return M(name)
    return None if stat.S_ISREG(mode) else M(N_("not a regular file"))


def _not_regular(kind: dict, link: Path | None = None) -> dict:
    if link is not None:
        return M(N_("%(kind)s (through the symbolic link %(link)s), not a regular file: only regular files are read"),
                 kind=kind, link=str(link))
    return M(N_("%(kind)s, not a regular file: only regular files are read"), kind=kind)


def _unreadable(error: Any) -> dict:
    return M(N_("cannot read the file: %(error)s"), error=str(error))


def file_problem(path: Path) -> dict | None:
    """Why ``path`` cannot be read as a regular file, from its type alone; None when it can, or when it
    simply does not exist (the caller says that in its own words)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return M(N_("a symbolic link to %(target)s, which does not exist"), target=os.readlink(path))
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return M(N_("a symbolic link loop: the link points back at itself"))
        return _unreadable(exc.strerror or exc)
    except ValueError as exc:  # a path the OS cannot name (a NUL byte)
        return _unreadable(exc)
    kind = special_kind(st.st_mode)
    if kind is None:
        return None
    return _not_regular(kind, path if os.path.islink(path) else None)


def open_regular(path: Path, limit: int | None, limit_reason: dict | None = None) -> BinaryIO | dict:
    """``path`` opened for reading, or why it is not read (a message): missing, not a regular file, or
    larger than ``limit`` bytes (``limit_reason`` says where that limit comes from). The type is checked
    again on the open file, so a file swapped for a pipe between the check and the open is still
    refused, and the open itself never waits for a writer."""
    problem = file_problem(path)
    if problem:
        return problem
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return NOT_FOUND
    except (OSError, ValueError) as exc:
        return _unreadable(getattr(exc, "strerror", None) or exc)
    st = os.fstat(fd)
    kind = special_kind(st.st_mode)
    if kind is not None or (limit is not None and st.st_size > limit):
        os.close(fd)
        if kind is not None:
            return _not_regular(kind)
        if limit_reason is not None:
            return M(N_("%(size)d bytes, more than the %(limit)d bytes read at most: %(why)s"), size=st.st_size,
                     limit=limit, why=limit_reason)
        return M(N_("%(size)d bytes, more than the %(limit)d bytes read at most"), size=st.st_size, limit=limit)
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bounded(fh: BinaryIO, limit: int | None) -> bytes:
    """The file's bytes, but no more than ``limit`` + 1: a file that grows while it is read still ends.
    Read in pieces the size the file says it has (``read(n)`` sets aside all ``n`` bytes at once)."""
    chunks: list[bytes] = []
    size = 0
    want = os.fstat(fh.fileno()).st_size + 1
    while limit is None or size <= limit:
        chunk = fh.read(want if limit is None else min(want, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        want = 1 << 20
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # a file read in one piece is not copied

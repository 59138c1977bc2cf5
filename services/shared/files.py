"""Private files and directories: the data directory 0700, databases and secrets 0600.

Modes are set explicitly, never left to the umask: a process started with
``umask 022`` (or 000) would otherwise leave the signing keys' database readable
by every local user. A looser file or directory that this process owns is
tightened with a warning; one it does not own cannot be fixed safely (its owner
could loosen it again) and is refused with a one-line message.

A directory may keep its "others may traverse" bit (0711): the embedded
PostgreSQL's system user needs it to reach its own data below the data
directory, and traversing reveals no names and opens no 0600 file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Final

__all__ = [
    "PRIVATE_DIRECTORY_MODE",
    "PRIVATE_FILE_MODE",
    "UnsafePermissionsError",
    "create_private_file",
    "private_directory",
    "private_file",
    "write_private_once",
]

PRIVATE_DIRECTORY_MODE: Final = 0o700
PRIVATE_FILE_MODE: Final = 0o600
# What makes a directory too loose: reading (listing) or writing by group or others.
_DIRECTORY_LOOSE: Final = 0o066
_FILE_LOOSE: Final = 0o077

log = logging.getLogger("loansuite.files")


class UnsafePermissionsError(Exception):
    """A file or directory others can read or write, which this process may not fix."""


def private_directory(path: Path) -> Path:
    """Create path as 0700 (parents too), or tighten an existing one that is ours."""
    if not path.exists():
        path.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
        path.chmod(PRIVATE_DIRECTORY_MODE)  # mkdir's mode passes through the umask
        return path
    info = path.stat()
    if info.st_mode & stat.S_ISVTX:
        # A shared directory such as /tmp: others could plant a -wal or -shm file there.
        raise UnsafePermissionsError(
            f"{path} is a shared directory (sticky bit); give the data a directory of its own"
        )
    if info.st_mode & _DIRECTORY_LOOSE:
        _tighten(path, info, PRIVATE_DIRECTORY_MODE | (info.st_mode & 0o011))
    return path


def private_file(path: Path) -> None:
    """Tighten an existing file to 0600 if it is looser and ours; refuse it if not ours."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_mode & _FILE_LOOSE:
        _tighten(path, info, PRIVATE_FILE_MODE)


def create_private_file(path: Path) -> None:
    """Make an empty 0600 file unless one exists, then check the one that does."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    private_file(path)


def write_private_once(path: Path, data: bytes) -> bytes:
    """Write data to a new 0600 file unless one exists; return what the file holds.

    Written aside, then linked into place: a process racing us reads a whole
    file or finds none, and exactly one content wins.
    """
    if not path.exists():
        private_directory(path.parent)
        staged = path.with_name(f".{path.name}-{secrets.token_hex(8)}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(staged, path)
        finally:
            staged.unlink()
    private_file(path)
    return path.read_bytes()


def _tighten(path: Path, info: os.stat_result, mode: int) -> None:
    old = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.geteuid():
        raise UnsafePermissionsError(
            f"{path} has mode {old:04o} and belongs to uid {info.st_uid}, not to this "
            f"process (uid {os.geteuid()}): make it {mode:04o} as its owner, or run as its owner"
        )
    path.chmod(mode)
    # The message itself says what changed: a command without log handlers prints only it.
    log.warning(
        f"permissions tightened: {path} from {old:04o} to {mode:04o}",
        extra={"path": str(path), "old_mode": f"{old:04o}", "new_mode": f"{mode:04o}"},
    )

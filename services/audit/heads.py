"""The published head: one JSON line per committed ingest batch, appended to a file.

A truncated tail leaves an intact chain behind, so it shows only against a head
kept outside the database. After each commit the service appends
``{"sequence": N, "hash": "<hex>", "time": "<UTC ISO 8601>"}`` to the heads
file and fsyncs it; the file is the publication channel an operator ships
elsewhere (log shipping, object storage, a notary). Verification uses its last
complete line unless it is given a head explicitly.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from services.audit.chain import Head
from services.shared.files import PRIVATE_FILE_MODE, private_directory, private_file

__all__ = ["HEADS_FILE_NAME", "HeadsFile", "read_last_head"]

# In the data directory, unless the service is told otherwise.
HEADS_FILE_NAME: Final = "audit-heads.jsonl"

log = logging.getLogger("loansuite.audit")

# The tail read to find the last line; a line is about 130 bytes.
_TAIL_BYTES: Final = 4096


class HeadsFile:
    """Appends heads to the file in increasing sequence order, durably."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_file(path)  # a file an older version left 0644 is tightened (files.py)
        self._lock = threading.Lock()
        self._published = 0  # the highest sequence this process has published

    def publish(self, head: Head) -> None:
        """Append the head unless a later one was already published; fsync before returning."""
        with self._lock:
            # Batches committed on several threads may reach this point out of
            # order; an older head would make the file's last line go backwards.
            if head.sequence <= self._published:
                return
            line = json.dumps(
                {"sequence": head.sequence, "hash": head.hash, "time": _now()},
                separators=(",", ":"),
            )
            self._append(line + "\n")
            self._published = head.sequence
        log.info("audit head published", extra={"sequence": head.sequence, "hash": head.hash})

    def last(self) -> Head | None:
        """The last head in the file, or None when nothing was published yet."""
        return read_last_head(self.path)

    def _append(self, line: str) -> None:
        created = not self.path.exists()
        if created:
            private_directory(self.path.parent)
        # 0600 whatever the umask: the file tells which events the log holds.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "a+b") as file:
            data = line.encode()
            if file.seek(0, os.SEEK_END) > 0:
                file.seek(-1, os.SEEK_END)
                if file.read(1) != b"\n":  # a crash cut the last line short: start a new one
                    data = b"\n" + data
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if created:  # the new file's directory entry must survive a crash too
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


def read_last_head(path: Path) -> Head | None:
    """The last complete, well-formed line of a heads file; None if there is none."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - _TAIL_BYTES))
            tail = file.read()
    except FileNotFoundError:
        return None
    # A crash mid-append leaves a partial last line: fall back to the one before.
    for line in reversed(tail.splitlines()):
        head = _parse(line)
        if head is not None:
            return head
    return None


def _parse(line: bytes) -> Head | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    sequence, hash_ = entry.get("sequence"), entry.get("hash")
    if type(sequence) is not int or sequence < 1 or not isinstance(hash_, str):
        return None
    return Head(sequence, hash_) if Head.is_valid_hash(hash_) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

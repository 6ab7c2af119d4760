"""Reading a backup archive within bounds: what ``restore`` reads into memory is never more
than a few MiB, whatever an archive's headers declare.

Only the database is streamed (to a file, in chunks, checked against its SHA-256); every
other member is read whole, so each has a size bound, checked against its header before a
byte is read: ``manifest.json`` at most 1 MiB, ``secret-key`` at most 64 KiB. tarfile itself
reads a few things whole too: the headers of long names and of PAX attributes (at most 1 MiB
here), and one header per member into a list (at most 64 members here; an archive of
``backup`` has three). Standard library only.
"""

from __future__ import annotations

import tarfile
from typing import IO

MiB = 1 << 20
HEADER_BOUND = MiB  # a PAX or GNU long-name header, read whole by tarfile
MEMBERS_BOUND = 64  # members listed (each a header in memory)
# the extended headers tarfile reads into memory before the member they describe
_EXTENDED = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class OverBound(tarfile.TarError):
    """Something in the archive is larger than this program reads; the message says what."""


def shown(size: int) -> str:
    """``1 MiB``, ``64 KiB``, ``512 bytes``."""
    for unit, name in ((MiB, "MiB"), (1 << 10, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


class BoundedInfo(tarfile.TarInfo):
    """A member header that refuses an extended header over ``HEADER_BOUND`` before tarfile
    reads it whole."""

    def _proc_member(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > HEADER_BOUND:
            raise OverBound(
                f"an extended tar header of {self.size} bytes (at most {shown(HEADER_BOUND)})"
            )
        return super()._proc_member(tarfile)  # type: ignore[misc, no-any-return]


def open_gz(path: str) -> tarfile.TarFile:
    """A tar.gz for reading, its extended headers bounded."""
    return tarfile.open(path, "r:gz", tarinfo=BoundedInfo)


def list_members(tar: tarfile.TarFile) -> None:
    """Read the member list (at most ``MEMBERS_BOUND`` members), so that ``getmember`` reads
    no further."""
    for _ in range(MEMBERS_BOUND):
        if tar.next() is None:
            return
    if tar.next() is not None:
        raise OverBound(f"more than {MEMBERS_BOUND} members")


def read_whole(data: IO[bytes], member: tarfile.TarInfo, bound: int) -> bytes:
    """The member's bytes, if it is no larger than ``bound`` (by its header, and as read)."""
    if member.size > bound:
        raise OverBound(f"{member.name} is {member.size} bytes (at most {shown(bound)})")
    content = data.read(bound + 1)
    if len(content) > bound:
        raise OverBound(f"{member.name} is over {shown(bound)}")
    return content

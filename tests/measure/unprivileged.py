"""Run a check as an unprivileged user, so that file permissions bind: as `nobody` in a forked child when
the tests run as root (chmod does not stop root: CAP_DAC_OVERRIDE), directly otherwise."""

from __future__ import annotations

import os
from collections.abc import Callable

NOBODY = 65534


def as_unprivileged(check: Callable[[], str], groups: tuple[int, ...] = ()) -> str:
    """`check()`'s text, computed by a user whom permissions stop; nothing is patched. `groups` are the
    supplementary groups `nobody` is given (as root only). The child cannot import from this interpreter's home
    once it is `nobody` (it may sit under /root), so what checks decode with is loaded before the fork."""
    import encodings.ascii  # noqa: F401  (the codecs the readers use, loaded while still root)
    import encodings.utf_8  # noqa: F401

    if os.geteuid() != 0:
        return check()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups(list(groups))
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write_end, check().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()

"""Owner-only files: the data directory is 0700 and everything tala (SQLite, the embedded
Redis, the key file) writes in it is 0600, so no other account on the machine can read a case
reference, an answer or a key. Checked at start: `exposed` names what others can still read
(a file copied in, or made before tala did this)."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

OWNER_ONLY_DIR, OWNER_ONLY_FILE = 0o700, 0o600
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_dir(path: Path) -> Path:
    """Make the directory (owner-only), or make it owner-only if it is ours and is not."""
    path.mkdir(mode=OWNER_ONLY_DIR, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & _OTHERS:
        path.chmod(OWNER_ONLY_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create an empty owner-only file where none is (SQLite then keeps its database there,
    and gives its WAL and shared-memory files the same mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY_FILE))
    except FileExistsError:
        pass
    return path


@contextmanager
def private_umask() -> Iterator[None]:
    """Files made meanwhile (and by a process started meanwhile, such as the embedded Redis
    server, for its whole life) are owner-only."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def exposed(root: Path) -> list[Path]:
    """What other accounts can read or enter under `root` (root included), for a warning."""
    if not root.exists():
        return []
    found = [root] if root.stat().st_mode & _OTHERS else []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            try:
                if not p.is_symlink() and p.stat().st_mode & _OTHERS:
                    found.append(p)
            except FileNotFoundError:  # gone meanwhile (a temporary file)
                continue
    return found

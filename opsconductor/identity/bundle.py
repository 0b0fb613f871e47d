"""A workload's certificate, key and CA written the way the kubelet writes a mounted Secret:
the files are symlinks into a timestamped directory, and one rename of the `..data` symlink
swaps all three at once. Readers that resolve the symlinks see one consistent set; Envoy's
watched directory sees a move and reloads."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from opsconductor.identity.authority import Issued, write_private

# Names of the files as cert-manager's Secrets name them, so a mount and a local bundle agree.
CERT_FILE, KEY_FILE, CA_FILE = "tls.crt", "tls.key", "ca.crt"
_DATA = "..data"


def write_bundle(directory: Path, issued: Issued, owner: tuple[int, int] | None = None) -> None:
    """Atomically replaces the bundle in `directory` (made 0700, the key 0600); `owner`
    (uid, gid) hands it to the user of the process that reads it (compose's init)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    version = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    version.mkdir(mode=0o700)
    (version / CERT_FILE).write_bytes(issued.certificate)
    (version / CA_FILE).write_bytes(issued.ca)
    write_private(version / KEY_FILE, issued.private_key)
    if owner is not None:
        for path in (directory, version, *version.iterdir()):
            os.chown(path, *owner)
    link = directory / f"{_DATA}_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(version.name)
    old = os.readlink(directory / _DATA) if (directory / _DATA).is_symlink() else None
    os.replace(link, directory / _DATA)
    for name in (CERT_FILE, KEY_FILE, CA_FILE):
        if not (directory / name).is_symlink():
            (directory / name).unlink(missing_ok=True)
            (directory / name).symlink_to(f"{_DATA}/{name}")
    # The previous version stays until the next swap: a reader that resolved the links just
    # before this one still finds its files.
    for stale in directory.glob("..[0-9]*"):
        if stale.name not in (version.name, old):
            shutil.rmtree(stale, ignore_errors=True)


def paths(directory: Path) -> tuple[Path, Path, Path]:
    """The certificate, key and CA files of a bundle."""
    return directory / CERT_FILE, directory / KEY_FILE, directory / CA_FILE

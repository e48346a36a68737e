"""Where raw dataset files come from: the dataset root, a local data directory, or a download.

Resolution order for a raw file ``NAME`` of dataset ``DS``:

1. ``<root>/<DS>/raw/NAME`` (the root is ``data/`` by default, see :func:`default_root`);
2. ``$GRAPHDIFF_DATA_DIR/<subdir>/NAME`` when the variable is set (a read-only mirror such as the
   project's ``../shared/data``);
3. a download from the canonical URL into ``<root>/<DS>/raw/``.

graphdiff downloads a file only when its content is pinned (:class:`RawFile`: SHA-256, a publisher's MD5, a git
blob id at a fixed commit, or a digest of what the file parses to); a download whose digest differs is deleted and
refused with a one-line :class:`~graphdiff.errors.DataError`. Files found locally (steps 1 and 2) are the user's
and are not checked. Offline, step 3 fails with a one-line message that names the file and where to put it.
Downloads show a progress bar in MiB (:func:`graphdiff.log.progress`).

A dataset built from files records them in ``info.source`` (:func:`file_source`), so its cache is rebuilt when their
bytes change.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphdiff.errors import DataError
from graphdiff.io import default_root, file_sha256, new_file_mode
from graphdiff.log import progress

DATA_DIR_ENV = "GRAPHDIFF_DATA_DIR"
#: The commit of the GDSS repository (Jo et al. 2022) whose ``data/`` files graphdiff downloads and pins.
GDSS_COMMIT = "24cc490e0c5b39cbd265fda33ab2bc8b528d4454"
GDSS_DATA_URL = f"https://raw.githubusercontent.com/harryjo97/GDSS/{GDSS_COMMIT}/data/"
_MIB = 1 << 20


@dataclass(frozen=True)
class ContentPin:
    """A pin on what a file parses to, for a file whose bytes nobody publishes a digest of.

    Attributes:
        parse: ``parse(path)`` reads the file into JSON-serialisable data (raising :class:`DataError` if it cannot).
        sha256: :func:`content_sha256` of that data.
        what: what the data is, for messages (e.g. ``"sorted GDB indices"``).
    """

    parse: Callable[[Path], Any]
    sha256: str
    what: str


@dataclass(frozen=True)
class RawFile:
    """A raw file of a dataset.

    A file with a ``url`` must be pinned by at least one of ``sha256``, ``md5``, ``git_blob`` or ``content``;
    every pin given is checked on download.

    Attributes:
        name: file name inside ``<root>/<dataset>/raw/``.
        url: canonical download address (``None``: a local-only file, never downloaded).
        sha256: expected SHA-256 of the bytes.
        subdir: folder of the file inside ``$GRAPHDIFF_DATA_DIR``.
        md5: expected MD5 of the bytes, for publishers that give only that (GuacaMol).
        git_blob: expected git blob id of the bytes (SHA-1 of ``b"blob <size>\\0"`` + bytes, what a git tree
            records), for files served from a git repository at a fixed commit.
        content: a pin on the parsed content (:class:`ContentPin`).

    Raises:
        ValueError: a ``url`` without any pin (a programming error).
    """

    name: str
    url: str | None = None
    sha256: str | None = None
    subdir: str = ""
    md5: str | None = None
    git_blob: str | None = None
    content: ContentPin | None = None

    def __post_init__(self) -> None:
        if self.url is not None and not (self.digests() or self.content):
            raise ValueError(f"raw file {self.name}: a download URL needs a pin (sha256, md5, git_blob or content)")

    def digests(self) -> dict[str, str]:
        """The pinned digests of the bytes, ``{"sha256" | "md5" | "git_blob": lower-case hex}``."""
        pins = {"sha256": self.sha256, "md5": self.md5, "git_blob": self.git_blob}
        return {kind: value.lower() for kind, value in pins.items() if value is not None}


def file_digest(path: str | os.PathLike, kind: str) -> str:
    """Hex digest of a file's bytes; ``kind`` is ``"sha256"``, ``"md5"`` or ``"git_blob"`` (the git blob id)."""
    if kind == "git_blob":
        h = hashlib.sha1(b"blob %d\0" % os.path.getsize(path), usedforsecurity=False)
    else:
        h = hashlib.new(kind, usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def content_sha256(data: Any) -> str:
    """SHA-256 of JSON-serialisable data written as compact JSON (``separators=(",", ":")``, keys sorted)."""
    return hashlib.sha256(json.dumps(data, separators=(",", ":"), sort_keys=True).encode()).hexdigest()


def resolve(dataset: str, raw: RawFile, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return a local path for ``raw``, downloading it if needed.

    Raises:
        DataError: if the file is nowhere local and cannot be downloaded.
    """
    root = Path(root) if root is not None else default_root()
    local = root / dataset / "raw" / raw.name
    if local.is_file():
        return local
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        mirrored = Path(data_dir) / raw.subdir / raw.name
        if mirrored.is_file():
            return mirrored
    if raw.url is None or not download:
        raise DataError(f"{dataset}: raw file {raw.name} not found; place it at {local}"
                        + (f" or under ${DATA_DIR_ENV}/{raw.subdir}" if raw.subdir else ""))
    return _download(dataset, raw, local)


def _download(dataset: str, raw: RawFile, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        os.chmod(tmp, new_file_mode())  # readable like any other file, not mkstemp's 0o600
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(raw.url, timeout=60) as resp:
            size = getattr(resp, "length", None)  # None when the server does not say
            total = -(-size // _MIB) if size else None
            for block in progress(_blocks(resp), f"downloading {raw.name}", total=total, unit="MiB"):
                out.write(block)
        _check_pins(dataset, raw, Path(tmp), dest)
        os.replace(tmp, dest)
        return dest
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"{dataset}: could not download {raw.url} ({reason}); place {raw.name} at {dest}"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _blocks(stream: Any) -> Iterator[bytes]:
    """The bytes of a binary stream in blocks of 1 MiB (the last one shorter)."""
    while block := stream.read(_MIB):
        yield block


_DIGEST_NAMES = {"sha256": "SHA-256", "md5": "MD5", "git_blob": "git blob id"}


def _check_pins(dataset: str, raw: RawFile, tmp: Path, dest: Path) -> None:
    """Check a downloaded file against every pin of ``raw``.

    Raises:
        DataError: a digest differs (the caller deletes ``tmp``), in one line naming the URL and both digests.
    """
    refused = f"the download was deleted; place a good copy at {dest}"
    for kind, expected in raw.digests().items():
        digest = file_digest(tmp, kind)
        if digest != expected:
            raise DataError(f"{dataset}: {raw.url} has {_DIGEST_NAMES[kind]} {digest}, expected {expected}; {refused}")
    if raw.content is not None:
        try:
            digest = content_sha256(raw.content.parse(tmp))
        except DataError as exc:
            raise DataError(f"{dataset}: {raw.url} cannot be read as {raw.content.what} ({exc}); {refused}") from None
        if digest != raw.content.sha256:
            raise DataError(
                f"{dataset}: {raw.url} gives {raw.content.what} with SHA-256 {digest}, expected {raw.content.sha256}; "
                f"{refused}"
            )


def file_source(path: Path) -> dict[str, str]:
    """The fingerprint of a dataset's source file: ``{"file": absolute path, "sha256": digest of the bytes}``."""
    return {"file": str(path.resolve()), "sha256": file_sha256(path)}


def multi_file_source(paths: Sequence[Path]) -> dict[str, Any]:
    """The first file's fingerprint (what the cache checks) plus every file's under ``files``."""
    files = [file_source(p) for p in paths]
    return {**files[0], "files": files}

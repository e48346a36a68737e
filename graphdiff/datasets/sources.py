"""Where raw dataset files come from: the dataset root, a local data directory, or a download.

Resolution order for a raw file ``NAME`` of dataset ``DS``:

1. ``<root>/<DS>/raw/NAME`` (the root is ``data/`` by default, see :func:`default_root`);
2. ``$GRAPHDIFF_DATA_DIR/<subdir>/NAME`` when the variable is set (a read-only mirror such as the
   project's ``../shared/data``);
3. a download from the canonical URL into ``<root>/<DS>/raw/``, checked against its SHA-256.

Offline, step 3 fails with a one-line message that names the file and where to put it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from graphdiff.errors import DataError
from graphdiff.io import file_sha256

DATA_DIR_ENV = "GRAPHDIFF_DATA_DIR"
ROOT_ENV = "GRAPHDIFF_ROOT"


def default_root() -> Path:
    """The dataset root: ``$GRAPHDIFF_ROOT`` if set, else ``./data``."""
    return Path(os.environ.get(ROOT_ENV, "data"))


@dataclass(frozen=True)
class RawFile:
    """A raw file of a dataset.

    Attributes:
        name: file name inside ``<root>/<dataset>/raw/``.
        url: canonical download address (``None`` if the file cannot be downloaded).
        sha256: expected SHA-256 of the downloaded bytes (``None`` when the publisher gives none;
            the digest of the first download is then recorded in the dataset info).
        subdir: folder of the file inside ``$GRAPHDIFF_DATA_DIR``.
    """

    name: str
    url: str | None = None
    sha256: str | None = None
    subdir: str = ""


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
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(raw.url, timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        if raw.sha256 is not None:
            digest = file_sha256(tmp)
            if digest != raw.sha256:
                raise DataError(
                    f"{dataset}: {raw.url} has SHA-256 {digest[:12]}…, expected {raw.sha256[:12]}…; "
                    f"the file changed upstream: place a good copy at {dest}"
                )
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

"""Find a data set's file on disk, or download it: the search order in one function."""
from __future__ import annotations

import http.client
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from . import download as _download
from . import locate, sources
from .checksum import verify_file
from .errors import ChecksumError, DataFormatError, DatasetNotFoundError


@dataclass(frozen=True)
class Found:
    """A located file (or extracted folder) and how it was found.

    Attributes:
        path: the file or folder.
        where: a sentence for ``Dataset.source``: the path, where it was found, how verified.
        is_folder: True for an extracted folder whose files the caller still has to verify.
    """

    path: Path
    where: str
    is_folder: bool = False


def _local_names(spec: sources.RemoteFile) -> tuple[str, ...]:
    """The names a copy of ``spec`` may have on disk: as released, or unzipped by hand."""
    if spec.payload_md5 and spec.filename.endswith(".gz"):
        return spec.filename, spec.filename[:-3]
    return (spec.filename,)


def fetch(
    name: str,
    key: str = "archive",
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    folder: str | None = None,
) -> Found:
    """Return a verified local copy of file ``key`` of data set ``name``.

    Looks in the search order of ``locate`` (``data_dir``, ``$MINIDEEP_DATA``, the user
    cache, a system copy) for the file or, when ``folder`` is given, for that extracted
    folder; a file found there is verified against its published checksum. If nothing is
    found and ``download`` is true (and ``MINIDEEP_OFFLINE`` is not set), each mirror is
    tried in turn; the download is verified before it is kept.

    Raises:
        ChecksumError: a local file, or every download, has the wrong checksum.
        DatasetNotFoundError: nothing found and nothing could be downloaded; the message
            lists what was tried and how to put the file in place by hand.
    """
    spec = sources.SOURCES[name][key]
    # An extracted folder comes first: it is faster to read than the archive it came from.
    entries = ((folder,) if folder else ()) + _local_names(spec)
    hit = locate.find(name, entries, data_dir)
    if hit is not None:
        path, label = hit
        if folder and path.name == folder and path.is_dir():
            return Found(path, f"{path} ({label}, extracted folder)", is_folder=True)
        if path.is_dir():  # would be a bare IsADirectoryError from deep inside the checksum
            raise DataFormatError(
                f"{path} ({label}) is a folder, but the file {path.name} of data set {name!r} should be there "
                f"(md5 {spec.md5}). Move the folder away (or put the file itself there) and load again."
            )
        how = verify_file(path, md5=spec.md5, payload_md5=spec.payload_md5)
        return Found(path, f"{path} ({label}, {how})")

    dest = locate.download_dir(name, data_dir) / spec.filename
    attempts: list[str] = []
    checksum_failures: list[str] = []
    if not download:
        attempts.append("    download: not tried (download=False)")
    elif locate.offline():
        attempts.append(f"    download: not tried (${locate.ENV_OFFLINE} is set)")
    else:
        for url in spec.urls:
            try:
                _download.download_file(url, dest, md5=spec.md5, payload_md5=spec.payload_md5, progress=progress)
                return Found(dest, f"{dest} (downloaded from {url}, md5 ok)")
            except ChecksumError as err:
                checksum_failures.append(f"    {url}: {err}")
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
                attempts.append(f"    {url}: {type(err).__name__}: {err}")
    if checksum_failures and not attempts:
        raise ChecksumError("\n".join([f"every download of {spec.filename} failed verification:"] + checksum_failures))
    raise DatasetNotFoundError(_not_found_message(name, spec, data_dir, dest, attempts + checksum_failures))


def _not_found_message(
    name: str, spec: sources.RemoteFile, data_dir: str | Path | None, dest: Path, attempts: list[str]
) -> str:
    urls = "\n".join(f"    {u}" for u in spec.urls)
    return (
        f"could not find data set {name!r}: file {spec.filename} (md5 {spec.md5}).\n"
        f"  searched:\n{locate.describe_search(name, data_dir)}\n"
        + "\n".join(attempts)
        + f"\n  To use it offline, download it by hand on a machine with network from\n{urls}\n"
        f"  and put it in {dest.parent}/ (or in any folder you pass as data_dir=, --data-dir "
        f"or ${locate.ENV_DATA}). It is verified against its md5 before use.\n"
        f"  Without network, load_dataset('bundled') gives the Fashion-MNIST subset that ships with minideep."
    )

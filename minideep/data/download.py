"""Downloading one file safely: into a ``.part`` file, verified, then moved into place.

An interrupted, truncated or tampered download never ends up under the final name, so a
later run cannot mistake it for a good copy: the ``.part`` file is deleted on any error
(Ctrl-C included), and ``os.replace`` makes the final name appear atomically.
"""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any, Callable

from .checksum import verify_file
from .progress import progress_bar

#: The function that opens a URL; tests replace it, so no test ever touches the network.
urlopen: Callable[..., Any] = urllib.request.urlopen

_CHUNK = 1 << 20


def download_file(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    sha256: str | None = None,
    payload_md5: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` and verify it before it gets its final name.

    The bytes go to ``dest.<pid>.part``; once complete, the part file is checked against
    ``md5``/``sha256`` (see ``verify_file``) and renamed to ``dest`` in one atomic step.

    Args:
        url: ``http(s)://`` or ``file://`` address.
        dest: final path; its folder is created.
        md5, sha256, payload_md5: the published checksum(s); at least one is required.
        progress: show a tqdm progress bar (when tqdm is installed).
        timeout: seconds to wait for the server before giving up.

    Returns:
        ``dest`` as a Path.

    Raises:
        ChecksumError: the downloaded bytes do not match (nothing is left on disk).
        OSError / urllib.error.URLError: the server could not be reached.

    Example:
        >>> download_file("file:///tmp/x.gz", "/tmp/cache/x.gz", md5="...")  # doctest: +SKIP
    """
    if md5 is None and sha256 is None and payload_md5 is None:
        raise ValueError(f"download_file: refusing to download {url} without a checksum to verify")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    try:
        with urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            with progress_bar(total, f"downloading {dest.name}", unit="B", enabled=progress) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        verify_file(
            part, md5=md5, sha256=sha256, payload_md5=payload_md5,
            label=f"the download of {url}",
            advice="The download was incomplete or the server sent another file; nothing was kept.",
        )
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest

"""Resumable, verified, atomic downloads of weight files (stdlib `urllib` only).

`download(urls, dest, size, sha256)` tries each address in order. Bytes stream into `dest.part`;
an interrupted transfer keeps the `.part` and the next attempt asks for the rest with an HTTP
Range request (starting over when the server ignores it). Size and sha256 are checked before the
`.part` is renamed onto `dest`, so `dest` only ever holds a complete, verified file. A web page
served in place of the file (Google Drive's quota or confirmation page) is recognised and never
saved. When every address fails, one `WeightsError` line lists each address with its reason and
says where to place a manual download.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..errors import WeightsError
from ..fileio import sha256_file

__all__ = ["download", "expand_address"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes per read
_GDRIVE_ID = re.compile(
    r"^https://drive\.google\.com/(?:uc\?(?:[^#]*&)?id=|open\?(?:[^#]*&)?id=|file/d/)([\w-]+)"
)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class _AddressFailedError(Exception):
    """This address cannot deliver the file; the message says why (one clause)."""


class _InterruptedError(Exception):
    """The transfer stopped part-way; the `.part` file is kept for resuming."""


def expand_address(url: str) -> list[str]:
    """Addresses to actually try for `url`.

    A Google Drive `uc?id=` / `open?id=` / `file/d/` address first becomes Drive's direct
    download address with `confirm=t`, which serves large files without the "cannot scan for
    viruses" page (no HTML scraping needed); the address as written is tried after it.
    """
    match = _GDRIVE_ID.match(url)
    if match is None:
        return [url]
    direct = (
        f"https://drive.usercontent.google.com/download?id={match[1]}&export=download&confirm=t"
    )
    return [direct, url]


def download(
    urls: str | Sequence[str],
    dest: str | os.PathLike,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 2,
) -> Path:
    """Download the file at the first working address of `urls` to `dest`; return `dest`.

    urls:     one address or several, tried in order (all must serve the same file).
    dest:     final path; written only once the file is complete and verified.
    size:     expected size in bytes (None = unknown); checked before and after the transfer.
    sha256:   expected lowercase hex digest (None = unknown); checked before the rename.
    progress: show a tqdm progress bar on stderr.
    timeout:  seconds to wait for a connection or for the next bytes.
    retries:  resume attempts per address after the connection drops part-way.
    """
    addresses = (urls,) if isinstance(urls, str) else tuple(urls)
    if not addresses:
        raise ValueError("download() needs at least one address")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    expected = sha256.lower() if sha256 else None

    failures: list[str] = []
    for url in addresses:
        for address in expand_address(url):
            try:
                _fetch_verified(address, part, size, expected, progress, timeout, retries)
            except _AddressFailedError as e:
                log.info("%s: %s", address, e)
                failures.append(f"{address}: {e}")
                continue
            os.replace(part, dest)
            return dest
    raise WeightsError(
        f"could not download {dest.name}: tried {'; '.join(failures)}. "
        f"Download it yourself from {addresses[0]} and place it at {dest}"
    )


def _fetch_verified(
    url: str,
    part: Path,
    size: int | None,
    sha256: str | None,
    progress: bool,
    timeout: float,
    retries: int,
) -> None:
    """Bring `part` to the complete, verified file from `url`, or raise `_AddressFailedError`."""
    attempts = 0
    started_over = False
    while True:
        try:
            resumed = _fetch(url, part, size, progress, timeout)
        except _InterruptedError as e:
            if attempts < retries:
                attempts += 1
                log.info("%s: %s; resuming (attempt %d of %d)", url, e, attempts, retries)
                continue
            kept = part.stat().st_size if part.exists() else 0
            if kept:
                raise _AddressFailedError(
                    f"{e} ({kept:,} bytes kept in {part.name}; run again to resume)"
                ) from None
            raise _AddressFailedError(str(e)) from None
        problem = _verify(part, size, sha256)
        if problem is None:
            return
        part.unlink(missing_ok=True)
        if resumed and not started_over:
            # The kept bytes may come from another address or an older file: start over once.
            log.info(
                "%s: resumed file is wrong (%s); downloading again from the start", url, problem
            )
            started_over = True
            continue
        raise _AddressFailedError(f"the downloaded file is wrong: {problem}; it was deleted")


def _verify(path: Path, size: int | None, sha256: str | None) -> str | None:
    """None if `path` has the expected size and sha256, else 'expected ..., got ...'."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"expected {size:,} bytes, got {actual:,} bytes"
    if sha256 is not None:
        digest = sha256_file(path)
        if digest != sha256:
            return f"expected sha256 {sha256}, got {digest}"
    return None


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    from .._version import __version__

    headers = {"User-Agent": f"image2stylegan/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise _AddressFailedError(f"no answer within {timeout:g} s") from None
        raise _AddressFailedError(f"cannot connect ({_reason(e.reason)})") from None
    except TimeoutError:
        raise _AddressFailedError(f"no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as e:
        raise _AddressFailedError(f"cannot connect ({_reason(e)})") from None


def _reason(e: object) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _fetch(url: str, part: Path, size: int | None, progress: bool, timeout: float) -> bool:
    """Append the missing bytes of the file at `url` to `part` (or rewrite it when the server
    cannot resume). Returns True if earlier bytes were reused. Raises `_AddressFailedError` (nothing
    useful here) or `_InterruptedError` (stopped part-way; `part` keeps what arrived)."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset > 0:
        return True  # an earlier run got every byte but stopped before verifying

    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:  # the kept bytes reach past the end: stale; start over
            part.unlink()
            return _fetch(url, part, size, progress, timeout)
        raise _AddressFailedError(f"HTTP {e.code} {e.reason}") from None

    with response:
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in _HTML_TYPES:
            raise _AddressFailedError(_html_message(_read_some(response)))
        length = _int_or_none(response.headers.get("Content-Length"))
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                got = "no usable Content-Range" if start is None else f"bytes from {start:,}"
                raise _AddressFailedError(f"asked for bytes from {offset:,}, the server sent {got}")
            if total is None and length is not None:
                total = offset + length
        else:
            if offset:
                log.info("%s does not resume downloads; starting over", url)
            offset = 0
            total = length
        if size is not None and total is not None and total != size:
            raise _AddressFailedError(f"the server offers {total:,} bytes, expected {size:,} bytes")
        _stream(response, part, offset, total, length, progress, timeout)
    return offset > 0


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    offset: int,
    total: int | None,
    length: int | None,
    progress: bool,
    timeout: float,
) -> None:
    """Copy the response body to `part` (appending after `offset` bytes) with a progress bar."""
    from tqdm.auto import tqdm

    received = offset

    def read() -> bytes:
        try:
            return response.read(CHUNK)
        except TimeoutError:
            raise _InterruptedError(f"no data for {timeout:g} s after {received:,} bytes") from None
        except (http.client.HTTPException, OSError) as e:
            raise _InterruptedError(
                f"connection lost after {received:,} bytes ({_reason(e)})"
            ) from None

    first = read()
    if offset == 0 and not first:
        raise _AddressFailedError("the server sent an empty file")
    if offset == 0 and _looks_like_html(first):
        raise _AddressFailedError(_html_message(first))  # never saved
    name = part.name.removesuffix(".part")
    mode = "ab" if offset else "wb"
    with (
        open(part, mode) as f,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar,
    ):
        chunk = first
        while chunk:
            f.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
            chunk = read()
    if length is not None and received - offset < length:
        expected = f" of {total:,}" if total is not None else ""
        raise _InterruptedError(f"connection closed after {received:,}{expected} bytes")


def _read_some(response: http.client.HTTPResponse, limit: int = 1 << 16) -> bytes:
    try:
        return response.read(limit)
    except (http.client.HTTPException, OSError):
        return b""


def _looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head"))


def _html_message(data: bytes) -> str:
    """Say which web page came back in place of the file (Google Drive's are the usual ones)."""
    text = data.decode("utf-8", "replace").lower()
    if "quota" in text:
        why = (
            "Google Drive's 'download quota exceeded' page: too many people downloaded the file "
            "recently; try again in a day or use another address"
        )
    elif "virus" in text or "download anyway" in text or "confirm" in text:
        why = "Google Drive's page asking to confirm the download of a large file"
    elif "sign in" in text or "accounts.google.com" in text or "login" in text:
        why = "a sign-in page"
    else:
        why = "an error or landing page"
    return f"the server returned an HTML web page instead of the file ({why}); nothing was saved"


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _content_range(value: str) -> tuple[int | None, int | None]:
    """Parse 'bytes START-END/TOTAL' (TOTAL may be '*') -> (START, TOTAL)."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value)
    if match is None:
        return None, None
    total = None if match[2] == "*" else int(match[2])
    return int(match[1]), total

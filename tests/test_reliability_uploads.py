"""AIA uploads in the web app: the file count is capped while the form streams in, every file's size
is capped, the whole body is capped with a message saying what the route takes, and the uploaded
bytes go to disk in chunks so that the server's memory stays bounded whatever is sent.

The route's own pieces (`uploads.aia_upload_form`, `uploads.spooled_to_disk`, `BodyLimit`) are driven as a server
drives them: an ASGI receive channel that produces the body lazily, one 1 MiB message at a time."""

import asyncio
import json
import tracemalloc

import pytest
from starlette.requests import Request

from solarjax.app import server, uploads

MIB = 2**20
BOUNDARY = b"solarjaxboundary"


class LazyBody:
    """An ASGI receive channel of a multipart body of `files` parts (name -> size in bytes, all FITS-like),
    produced 1 MiB at a time; `pulled` counts the bytes the server asked for."""

    def __init__(self, files: dict[str, int], filters: str = '{"k": 3}'):
        self.pieces = self._pieces(files, filters)
        self.pulled = 0

    @staticmethod
    def _pieces(files, filters):
        yield (
            b"--"
            + BOUNDARY
            + b'\r\nContent-Disposition: form-data; name="filters"\r\n\r\n'
            + filters.encode()
            + b"\r\n"
        )
        for name, size in files.items():
            yield (
                b"--"
                + BOUNDARY
                + b'\r\nContent-Disposition: form-data; name="files"; filename="'
                + name.encode()
                + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
            )
            first = b"SIMPLE  =                    T" + b" " * 50
            remaining = size - len(first)
            yield first
            while remaining > 0:
                chunk = min(MIB, remaining)
                remaining -= chunk
                yield b"\0" * chunk
            yield b"\r\n"
        yield b"--" + BOUNDARY + b"--\r\n"

    async def __call__(self):
        piece = next(self.pieces, None)
        if piece is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": True}


def _request(body: LazyBody, with_app: bool = True) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/aia/search/upload",
        "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)],
    }
    if with_app:
        scope["app"] = object()  # as inside the app: starlette turns parser errors into HTTPException
    return Request(scope, body)


async def _receive_to_disk(body: LazyBody, folder, max_files: int, max_file_bytes: int):
    form = await uploads.aia_upload_form(_request(body), max_files=max_files)
    try:
        files = [value for key, value in form.multi_items() if key == "files"]
        return form.get("filters"), uploads.spooled_to_disk(files, folder, max_file_bytes)
    finally:
        await form.close()


def test_files_reach_disk_whole_while_memory_stays_bounded(tmp_path):
    sizes = {"aia_171.fits": 12 * MIB + 17, "aia_193.fits": 12 * MIB, "aia_211.fits": 9 * MIB + 3}
    tracemalloc.start()
    try:
        filters, uploads = asyncio.run(
            _receive_to_disk(LazyBody(sizes), tmp_path, max_files=3, max_file_bytes=16 * MIB)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert json.loads(filters) == {"k": 3}
    assert [name for name, _ in uploads] == list(sizes)
    assert [path.stat().st_size for _, path in uploads] == list(sizes.values())
    assert all(path.read_bytes()[:9] == server.FITS_SIGNATURE for _, path in uploads)
    # 33 MiB went through; never more than a few 1 MiB spool buffers and chunks were held at once
    assert peak < 8 * MIB, f"peak Python memory {peak / MIB:.1f} MiB"


def test_too_many_files_are_refused_before_their_bytes_are_read(tmp_path):
    for with_app in (True, False):
        body = LazyBody({f"aia_{i}.fits": 2 * MIB for i in range(20)})
        with pytest.raises(server.UploadError) as error:
            asyncio.run(uploads.aia_upload_form(_request(body, with_app), max_files=3))
        assert error.value.status == 413
        assert str(error.value) == (
            "files: too many files: at most 3 (one AIA level-1 FITS file per channel of the index, or one .npy patch)"
        )
        assert body.pulled < 3 * 2 * MIB + MIB  # stopped at the 4th file's headers, of 40 MiB offered


def test_a_file_over_its_cap_is_413_naming_it(tmp_path):
    body = LazyBody({"aia_171.fits": 2 * MIB, "huge.fits": 5 * MIB + 1})
    with pytest.raises(server.UploadError) as error:
        asyncio.run(_receive_to_disk(body, tmp_path, max_files=3, max_file_bytes=5 * MIB))
    assert error.value.status == 413 and str(error.value).startswith("huge.fits: file too large: 5242881 bytes")


def test_body_over_the_total_cap_is_413_with_what_the_route_takes():
    sent = []

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):  # reads the whole body, as a form parser does
        while (message := await receive())["type"] != "http.disconnect" and message.get("more_body"):
            pass

    body = LazyBody({f"aia_{i}.fits": 30 * MIB for i in range(20)})
    limited = server.BodyLimit(
        app, {"/api/aia/search/upload": 3 * 40 * MIB}, {"/api/aia/search/upload": "at most 3 files, one per channel"}
    )
    asyncio.run(limited({"type": "http", "path": "/api/aia/search/upload", "headers": []}, body, send))
    assert sent[0]["status"] == 413
    detail = json.loads(sent[1]["body"])["detail"]
    assert (
        detail == f"request too large: over the {120 * MIB} byte limit of this route (at most 3 files, one per channel)"
    )
    assert body.pulled <= 120 * MIB + 2 * MIB  # of 600 MiB offered

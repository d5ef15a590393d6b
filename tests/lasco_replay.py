"""Replays of LASCO data services for offline tests, and LASCO files written around real headers.

Files: `write_sequence` writes LASCO C2 level-1 FITS frames with sunpy's real C2 header (its roll, plate
scale and solar radius; centre and size adapted) around an analytic r^-3 corona in which a front at a
known position angle, width and height brightens the corona by 80%.

Helioviewer replay: a local Helioviewer API (version 2) that replays LASCO JPEG2000 files, for `solarjax.data.lasco_download`.

Served on 127.0.0.1, in the formats of the Helioviewer API:

    /v2/getClosestImage/?date=ISO&sourceId=N   {"id": int, "date": "YYYY-MM-DD HH:MM:SS", "scale", "width",
                                                "height", "refPixelX", "refPixelY", "sunCenterOffsetParams": [],
                                                "layeringOrder"}; a source without images:
                                                {"error": "No images of the requested type (...) are currently
                                                available.", "errno": 10}
    /v2/getJP2Image/?date=ISO&sourceId=N       the closest image's JPEG2000 bytes (image/jp2)

The archive: copies of sunpy's real LASCO C3 Helioviewer file (2013-05-13 16:54:06) at a 12-minute
cadence, each with its TIME_OBS rewritten in the XML header (same length, so the boxes stay valid).
Faults, each consumed once per injection (`HelioviewerReplay.inject`): "drop" (half the file under the
full Content-Length, then a reset), "truncate" (the first 3000 bytes with that length: a complete
answer holding a broken file), "http_500" (on "getClosestImage" or on a file name).
"""

import collections
import dataclasses
import datetime
import http.server
import json
import math
import pathlib
import socket
import struct
import threading
import urllib.parse

import numpy as np
import sunpy.data.test
from astropy.io import fits

FRONT_PA_DEG, FRONT_WIDTH_DEG = 250.0, 60.0


def real_c2_header() -> fits.Header:
    header = fits.Header.fromtextfile(sunpy.data.test.get_test_filepath("lasco_c2_25299383_s.header"))
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BSCALE", "BZERO", "BLANK", "HISTORY", "COMMENT"):
        header.remove(key, ignore_missing=True, remove_all=True)
    return header


def corona_with_front(
    header: fits.Header,
    shape,
    front_height_rsun: float | None,
    pa_deg: float = FRONT_PA_DEG,
    width_deg: float = FRONT_WIDTH_DEG,
) -> np.ndarray:
    """An r^-3 corona (MSB-like units) with a front brightening it by 80% over `width_deg` about `pa_deg`."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    per_rsun = header["RSUN"] / header["CDELT1"]
    dx, dy = (x - (header["CRPIX1"] - 1)) / per_rsun, (y - (header["CRPIX2"] - 1)) / per_rsun
    roll = math.radians(header["CROTA1"])
    east_west = math.cos(roll) * dx - math.sin(roll) * dy
    north_south = math.sin(roll) * dx + math.cos(roll) * dy
    radius = np.maximum(np.hypot(east_west, north_south), 0.5)
    angle = np.degrees(np.arctan2(-east_west, north_south)) % 360
    corona = 1e-8 * radius**-3.0
    if front_height_rsun is None:
        return corona
    offset = np.abs((angle - pa_deg + 180) % 360 - 180)
    front = np.exp(-0.5 * ((radius - front_height_rsun) / 0.2) ** 2) * (offset <= width_deg / 2)
    return corona * (1.0 + 0.8 * front)


def write_sequence(folder: pathlib.Path, heights, shape=(256, 256), start_minute=5, date="2009-02-28"):
    """LASCO C2 level-1 FITS frames 12 min apart from `date` 00:`start_minute`, one per front height
    (None: no front); returns their paths (named c2_<date>T<HHMM>.fts)."""
    header = real_c2_header()
    header["CRPIX1"], header["CRPIX2"] = shape[1] / 2 + 0.5, shape[0] / 2 + 0.5
    header["CDELT1"] = header["CDELT2"] = 11.9 * 1024 / shape[0]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for step, height in enumerate(heights):
        header["DATE-OBS"] = (
            f"{date}T{(start_minute + 12 * step) // 60:02d}:{(start_minute + 12 * step) % 60:02d}:33.380"
        )
        path = folder / f"c2_{header['DATE-OBS'][:16].replace(':', '')}.fts"
        fits.PrimaryHDU(corona_with_front(header, shape, height).astype(np.float32), header).writeto(path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------ Helioviewer replay

REAL_C3_JP2 = pathlib.Path(sunpy.data.test.get_test_filepath("2013_05_13__16_54_06_137__SOHO_LASCO_C3_white-light.jp2"))
REAL_C3_TIME = datetime.datetime(2013, 5, 13, 16, 54, 6, tzinfo=datetime.UTC)
HELIOVIEWER_SOURCES = {4: "LASCO C2 white-light", 5: "LASCO C3 white-light"}


@dataclasses.dataclass(frozen=True)
class ArchivedImage:
    id: int
    date: datetime.datetime
    source_id: int
    contents: bytes

    @property
    def file_name(self) -> str:
        detector = HELIOVIEWER_SOURCES[self.source_id].split()[1]
        return f"{self.date:%Y_%m_%d__%H_%M_%S}__SOHO_LASCO_{detector}_white-light.jp2"


def c3_archive(count: int, cadence_minutes: int = 12, first_id: int = 1001) -> list[ArchivedImage]:
    """`count` C3 images from 2013-05-13 16:54:06 on: the real file with its TIME_OBS rewritten."""
    original = REAL_C3_JP2.read_bytes()
    marker = b"<TIME_OBS>16:54:06.137<"
    assert original.count(marker) == 1
    images = []
    for k in range(count):
        date = REAL_C3_TIME + datetime.timedelta(minutes=cadence_minutes * k)
        contents = original.replace(marker, f"<TIME_OBS>{date:%H:%M:%S}.137<".encode())
        images.append(ArchivedImage(first_id + k, date, 5, contents))
    return images


class HelioviewerReplay:
    """The replay server: `base_url` is its API root; `requests` counts requests by endpoint and file name."""

    def __init__(self, images: list[ArchivedImage]):
        self.images = images
        self.requests: collections.Counter = collections.Counter()
        self._faults: dict[str, list[str]] = collections.defaultdict(list)
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                replay._answer(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v2/"

    def inject(self, key: str, fault: str) -> None:
        self._faults[key].append(fault)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _fault(self, key: str) -> str | None:
        return self._faults[key].pop(0) if self._faults.get(key) else None

    def _closest(self, query: dict) -> ArchivedImage | dict:
        source_id = int(query["sourceId"][0])
        when = datetime.datetime.strptime(query["date"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        candidates = [image for image in self.images if image.source_id == source_id]
        if not candidates:
            name = HELIOVIEWER_SOURCES.get(source_id, f"source {source_id}")
            return {"error": f"No images of the requested type ({name}) are currently available.", "errno": 10}
        return min(candidates, key=lambda image: (abs((image.date - when).total_seconds()), image.date))

    def _answer(self, handler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(url.query)
        endpoint = url.path.rstrip("/").rsplit("/", 1)[-1]
        self.requests[endpoint] += 1
        if endpoint == "getClosestImage":
            if self._fault("getClosestImage") == "http_500":
                return self._send(handler, 500, b"Internal Server Error", "text/plain")
            found = self._closest(query)
            if isinstance(found, dict):
                return self._send(handler, 200, json.dumps(found).encode(), "application/json")
            metadata = {
                "id": found.id,
                "date": f"{found.date:%Y-%m-%d %H:%M:%S}",
                "scale": 575.0,
                "width": 102,
                "height": 102,
                "refPixelX": 51.5,
                "refPixelY": 51.5,
                "sunCenterOffsetParams": [],
                "layeringOrder": 3,
            }
            return self._send(handler, 200, json.dumps(metadata).encode(), "application/json")
        if endpoint == "getJP2Image":
            found = self._closest(query)
            if isinstance(found, dict):
                return self._send(handler, 200, json.dumps(found).encode(), "application/json")
            self.requests[found.file_name] += 1
            fault = self._fault(found.file_name)
            if fault == "http_500":
                return self._send(handler, 500, b"Internal Server Error", "text/plain")
            if fault == "truncate":
                return self._send(handler, 200, found.contents[:3000], "image/jp2")
            if fault == "drop":
                handler.send_response(200)
                handler.send_header("Content-Type", "image/jp2")
                handler.send_header("Content-Length", str(len(found.contents)))
                handler.end_headers()
                handler.wfile.write(found.contents[: len(found.contents) // 2])
                handler.wfile.flush()
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.close_connection = True
                return None
            return self._send(handler, 200, found.contents, "image/jp2")
        return self._send(handler, 404, b'{"error": "Invalid action specified."}', "application/json")

    @staticmethod
    def _send(handler, status: int, body: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

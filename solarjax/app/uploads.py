"""Uploaded query files, checked by content and turned into queries: a SHARP Br FITS file or a 2-D NPY Br map
(-> [1, 128, 128, 1] patch), AIA level-1 FITS files (one per channel) or one normalised NPY patch (-> [1, 128,
128, C]) or one CME difference image as NPY (-> [1, 128, 128, 1]). No path from a request reaches the filesystem: files are written under fresh names in private
temporary folders; a bad file is an `UploadError` naming the uploaded file and the reason.
"""

import io
import pathlib
import tempfile
from collections.abc import Sequence

import numpy as np

from solarjax.app import units
from solarjax.app.search import AIA_PATCH_SIZE, CME_PATCH_SIZE

UPLOAD_SUFFIXES = (".fits", ".fit", ".fts", ".npy")
"""File types of a SHARP query upload."""

FITS_SIGNATURE = b"SIMPLE  ="
NPY_MAGIC = b"\x93NUMPY"
NPY_SIDE_RANGE = (16, 4096)
"""Smallest and largest side (pixels) of an uploaded NPY Br map."""


class UploadError(ValueError):
    """An uploaded file that cannot be used; `status` is the HTTP status to answer with."""

    def __init__(self, name: str, reason: str, status: int = 422):
        super().__init__(f"{name}: {reason}")
        self.status = status


def safe_name(filename: str | None) -> str:
    """The upload's base name with anything but [A-Za-z0-9._-] replaced (never a path)."""
    base = pathlib.PurePosixPath((filename or "upload").replace("\\", "/")).name or "upload"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:200]


def read_limited(stream, limit: int, name: str) -> bytes:
    contents = stream.read(limit + 1)
    if len(contents) > limit:
        raise UploadError(name, f"file too large: over the {limit} byte limit", status=413)
    if not contents:
        raise UploadError(name, "empty file: 0 bytes")
    return contents


def uploaded_image(name: str, contents: bytes) -> tuple[np.ndarray, dict]:
    """Preprocessed query [1, 128, 128, 1] and its metadata from an uploaded file's bytes.

    FITS: a SHARP Br segment (read and preprocessed exactly as in training). NPY: a 2-D Br map in
    G (NaN allowed), preprocessed the same way.
    """
    from solarjax.data import SharpReadError, preprocess, preprocess_patch, read_sharp

    suffix = pathlib.PurePosixPath(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise UploadError(
            name, f"unsupported file type {suffix or '(none)'}: upload one of {', '.join(UPLOAD_SUFFIXES)}", status=415
        )
    if suffix == ".npy":
        field = _npy_field(name, contents)
        metadata = {"file": name, "physical": units.patch_units_payload("an NPY map carries no plate scale")}
        return preprocess(field)[None, ..., None], metadata
    if not contents.startswith(FITS_SIGNATURE):
        raise UploadError(name, f"not a FITS file: it starts with {contents[:16]!r}, not 'SIMPLE  ='")
    with tempfile.TemporaryDirectory(prefix="solarjax-upload-") as folder:
        path = pathlib.Path(folder) / name
        path.write_bytes(contents)
        try:
            patch = read_sharp(path)
            scale = units.plate_scale(_image_header(path))
        except SharpReadError as error:
            raise UploadError(name, error.reason) from error
    if patch.segment != "Br":
        raise UploadError(name, f"a {patch.segment} segment: the index holds Br patches, upload a .Br.fits file")
    _checked_gauss(name, patch.data)
    meta = patch.meta
    metadata = {
        "file": name,
        "harpnum": meta.get("harpnum"),
        "noaa_ar": meta.get("noaa_ar"),
        "t_rec": meta["t_rec"].isoformat(),
        "lat_deg": meta.get("lat_deg"),
        "lon_deg": meta.get("lon_deg"),
        "shape": list(patch.data.shape),
        "physical": units.physical_payload(patch.data, scale),
    }
    return preprocess_patch(patch).image[None, ..., None], metadata


def _image_header(path: pathlib.Path) -> dict:
    """The plate-scale keywords (`units.SCALE_KEYWORDS`) of a FITS file's image HDU (the one `read_sharp`
    read); a keyword whose card cannot be parsed counts as absent (real SHARP headers hold broken cards)."""
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyError

    from solarjax.data.fits import image_hdu_index

    values = {}
    with fits.open(path) as hdus:
        header = hdus[image_hdu_index(path, hdus)].header
        for keyword in units.SCALE_KEYWORDS:
            try:
                values[keyword] = header[keyword]
            except (KeyError, VerifyError, ValueError):
                continue
    return values


def _npy_array(name: str, contents: bytes) -> np.ndarray:
    """The array of an uploaded NPY file's bytes (no pickled objects)."""
    if not contents.startswith(NPY_MAGIC):
        raise UploadError(name, "not an NPY file: no \\x93NUMPY header")
    try:
        return np.load(io.BytesIO(contents), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UploadError(name, f"unreadable NPY file: {error}") from error


def _npy_field(name: str, contents: bytes) -> np.ndarray:
    array = _npy_array(name, contents)
    if array.ndim != 2 or not all(NPY_SIDE_RANGE[0] <= side <= NPY_SIDE_RANGE[1] for side in array.shape):
        raise UploadError(
            name, f"an NPY query must be a 2-D Br map with sides in {list(NPY_SIDE_RANGE)}, got shape {array.shape}"
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise UploadError(name, f"an NPY query must hold numbers (Br in G), got dtype {array.dtype}")
    return _checked_gauss(name, array)


def _checked_gauss(name: str, field: np.ndarray) -> np.ndarray:
    """A Br map in gauss with data (`query_checks.check_gauss_map`), else a 422 naming the upload."""
    from solarjax.data.query_checks import check_gauss_map

    try:
        return check_gauss_map(field, name)
    except ValueError as error:
        raise UploadError(name, str(error).removeprefix(f"{name}: ")) from error


AIA_FITS_SUFFIXES = (".fits", ".fit", ".fts")
"""File types of an AIA level-1 upload (or one .npy patch)."""

AIA_UPLOAD_CHUNK_BYTES = 2**20
"""Bytes copied at a time from an uploaded AIA file to disk."""

AIA_UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one AIA level-1 FITS file per channel of the index, or one .npy patch",
                        },
                        "filters": {"type": "string", "description": "JSON filters (k, start, end, mu_min, mu_max)"},
                    },
                }
            }
        },
    }
}
"""The request body of /api/aia/search/upload for the OpenAPI page (the route parses its form itself)."""


async def aia_upload_form(request, max_files: int):
    """The multipart form of an AIA upload, parsed as it streams in: more than `max_files` files is
    refused (413) as soon as the extra file's headers arrive, before its bytes are read; files are
    spooled (at most 1 MB each in memory, the rest on disk) and the body is capped by `BodyLimit`."""
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.formparsers import MultiPartException

    try:
        return await request.form(max_files=max_files, max_fields=8)
    except (StarletteHTTPException, MultiPartException) as error:
        detail = str(getattr(error, "detail", None) or getattr(error, "message", error))
        if "Too many files" in detail:
            raise UploadError(
                "files",
                f"too many files: at most {max_files} (one AIA level-1 FITS file per "
                "channel of the index, or one .npy patch)",
                status=413,
            ) from error
        raise UploadError("files", f"unreadable multipart form: {detail}", status=400) from error


def spooled_to_disk(files, folder: pathlib.Path, max_file_bytes: int) -> list[tuple[str, pathlib.Path]]:
    """Copies uploaded files to ``folder/<number>-<safe name>`` in chunks; (safe name, path) each.

    Raises:
      UploadError: 413 for a file over `max_file_bytes` (checked before copying, and while copying),
        422 for an empty file.
    """
    uploads = []
    for number, file in enumerate(files):
        name = safe_name(file.filename)
        if file.size is not None and file.size > max_file_bytes:
            raise UploadError(
                name, f"file too large: {file.size} bytes, over the {max_file_bytes} byte limit", status=413
            )
        path = folder / f"{number}-{name}"
        copied = 0
        file.file.seek(0)
        with open(path, "wb") as out:
            while chunk := file.file.read(AIA_UPLOAD_CHUNK_BYTES):
                copied += len(chunk)
                if copied > max_file_bytes:
                    raise UploadError(name, f"file too large: over the {max_file_bytes} byte limit", status=413)
                out.write(chunk)
        if copied == 0:
            raise UploadError(name, "empty file: 0 bytes")
        uploads.append((name, path))
    return uploads


def uploaded_aia(uploads: Sequence[tuple[str, pathlib.Path]], wavelengths: Sequence[int]) -> tuple[np.ndarray, dict]:
    """Normalised AIA query [1, 128, 128, C] and its metadata from uploaded files (safe names, and
    their copies ``<number>-<name>`` in a private temporary folder).

    One NPY file: a normalised patch [128, 128, C] (or [1, 128, 128, C]) in the table's channel
    order. Otherwise one AIA level-1 FITS file per channel of the table (any order; the WAVELNTH
    keyword says which), prepared as `aia_patches` prepares its files (`aia_prep.prepare_observation`:
    DN/s, registration, channels stacked) without the degradation correction (its tables need the
    network), then the central 128 x 128 patch is cut and normalised per channel.
    """
    from solarjax.data import aia_prep

    wavelengths = [int(w) for w in wavelengths]
    names = [name for name, _ in uploads]
    if len(uploads) == 1 and names[0].lower().endswith(".npy"):
        return _aia_npy(names[0], uploads[0][1].read_bytes(), wavelengths)
    for name, path in uploads:
        suffix = pathlib.PurePosixPath(name).suffix.lower()
        if suffix not in AIA_FITS_SUFFIXES:
            raise UploadError(
                name,
                f"unsupported file type {suffix or '(none)'}: upload one AIA level-1 FITS file "
                f"per channel ({', '.join(AIA_FITS_SUFFIXES)}) or one .npy patch",
                status=415,
            )
        with open(path, "rb") as f:
            start = f.read(16)
        if not start.startswith(FITS_SIGNATURE):
            raise UploadError(name, f"not a FITS file: it starts with {start!r}, not 'SIMPLE  ='")
    folder = str(uploads[0][1].parent) if uploads else ""
    by_channel: dict[int, tuple[str, pathlib.Path]] = {}
    for name, path in uploads:
        try:
            wavelength, _ = aia_prep.read_aia_channel_and_time(path)
        except aia_prep.AIAReadError as error:
            raise UploadError(name, error.reason) from error
        if wavelength in by_channel:
            raise UploadError(name, f"a second {wavelength} A file (the first is {by_channel[wavelength][0]})")
        by_channel[wavelength] = (name, path)
    missing = [w for w in wavelengths if w not in by_channel]
    unused = [by_channel[w][0] for w in by_channel if w not in wavelengths]
    if missing or unused:
        raise UploadError(
            ", ".join(names),
            f"the index holds channels {wavelengths} A: upload one FITS file per "
            f"channel (missing {missing}; not used: {unused})",
        )
    try:
        observation = aia_prep.prepare_observation([by_channel[w][1] for w in wavelengths], degradation="skip")
    except aia_prep.AIAReadError as error:
        raise UploadError(error.path.name.partition("-")[2], error.reason) from error
    except ValueError as error:  # channel times too far apart
        raise UploadError(", ".join(names), str(error).replace(f"{folder}/", "")) from error
    rows, cols = observation.images.shape[:2]
    if rows < AIA_PATCH_SIZE or cols < AIA_PATCH_SIZE:
        raise UploadError(
            ", ".join(names),
            f"the registered image is {rows} x {cols} pixels, smaller than the "
            f"{AIA_PATCH_SIZE} x {AIA_PATCH_SIZE} patch",
        )
    row0, col0 = (rows - AIA_PATCH_SIZE) // 2, (cols - AIA_PATCH_SIZE) // 2
    box = np.array([[row0, row0 + AIA_PATCH_SIZE, col0, col0 + AIA_PATCH_SIZE]])
    patch = aia_prep.extract_patches(observation, box)[0]
    image = aia_prep.normalise_channels(patch.image, wavelengths).astype(np.float32)
    metadata = {
        "files": ";".join(by_channel[w][0] for w in wavelengths),
        "t_obs": patch.t_obs,
        "wavelengths": ",".join(map(str, wavelengths)),
        "bbox": ",".join(map(str, patch.bbox.tolist())),
        "hpc_x": patch.hpc_x,
        "hpc_y": patch.hpc_y,
        "mu": patch.mu,
        "registered_shape": [rows, cols],
        "degradation_corrected": False,
    }
    return image[None], metadata


def _aia_npy(name: str, contents: bytes, wavelengths: Sequence[int]) -> tuple[np.ndarray, dict]:
    """A normalised AIA patch from an NPY upload: [1, 128, 128, C] float32 in [0, 1]."""
    array = _npy_array(name, contents)
    shape = (AIA_PATCH_SIZE, AIA_PATCH_SIZE, len(wavelengths))
    if array.shape not in (shape, (1, *shape)) or not np.issubdtype(array.dtype, np.floating):
        raise UploadError(
            name,
            f"an NPY AIA query must be a float patch of shape {list(shape)} (channels "
            f"{list(wavelengths)} A, normalised), got {array.dtype} {list(array.shape)}",
        )
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise UploadError(name, "normalised AIA intensities must be finite and in [0, 1] (aia_prep.normalise)")
    return array.reshape(1, *shape).astype(np.float32), {"file": name, "wavelengths": ",".join(map(str, wavelengths))}


CME_UPLOAD_SUFFIXES = (".npy",)
"""File types of a CME query upload."""


def uploaded_cme(name: str, contents: bytes) -> tuple[np.ndarray, dict]:
    """A CME query from an NPY upload: a running-difference image as `cme_patches` stores it (relative
    difference in [-1, 1], Sun at the centre, north in row 0) of shape [128, 128] or [128, 128, 1] ->
    [1, 128, 128, 1] float32."""
    suffix = pathlib.PurePosixPath(name).suffix.lower()
    if suffix not in CME_UPLOAD_SUFFIXES:
        raise UploadError(
            name,
            f"unsupported file type {suffix or '(none)'}: a CME query is one .npy difference image "
            f"[{CME_PATCH_SIZE}, {CME_PATCH_SIZE}]",
            status=415,
        )
    array = _npy_array(name, contents)
    shape = (CME_PATCH_SIZE, CME_PATCH_SIZE)
    if array.shape not in (shape, (*shape, 1), (1, *shape, 1)):
        raise UploadError(
            name, f"a CME query must be one difference image of shape {list(shape)}, got shape {list(array.shape)}"
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise UploadError(name, f"a CME query must hold numbers, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)) or array.min() < -1.0 or array.max() > 1.0:
        raise UploadError(
            name, "a CME difference image must be finite and in [-1, 1] (relative difference, as cme_patches stores it)"
        )
    return array.reshape(1, *shape, 1).astype(np.float32), {"file": name}

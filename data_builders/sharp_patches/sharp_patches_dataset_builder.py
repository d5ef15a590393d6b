"""sharp_patches: 128x128 SDO/HMI SHARP CEA Br patches with their physical quantities.

Configs
  synthetic (default): `solarjax.data.synthetic` active regions, ``num_examples`` patches
    (default 20,000) of the synthetic set ``seed`` (default 23), with their ground truth. Each
    region is observed in `FRAMES_PER_REGION` frames a cadence apart; like a real HARP it has a
    ``harpnum`` (region id + 1) and each frame a ``t_rec``, so the same-region evaluation runs
    unchanged on synthetic data.
  fits: real ``hmi.sharp_cea_720s`` Br files from ``manual_dir`` (a JSOC export, e.g. made by
    ``solarjax data download``), with the bitmap segment where the export has it.

Every example is preprocessed as in the paper (`solarjax.data.preprocess`): B / 1000 G clipped to
[-1, 1], NaN -> 0, antialiased bilinear resize of the whole patch to 128x128. Its quantities
(`solarjax.physics.quantities`, threshold 150 G, NaN where undefined) and physical-unit quantities
(`solarjax.physics.physical_quantities`) are computed here, vectorised over chunks of
`CHUNK_SIZE` patches.

Splits never share an active region:
  fits: by HARP. ``u = sha256("HARP<harpnum>")`` read as a fraction in [0, 1) puts a HARP in train
    (u < 0.8), validation (u < 0.9) or test; the assignment of a HARP never depends on the other
    files. A split with no file is left out. The 16 HARPs of the shared test data give train 9
    HARPs (18 frames), validation 3 (11), test 4 (11).
  synthetic: contiguous index ranges of one seeded set (patch i depends only on (seed, i)) cut at
    region boundaries: with b = ceil(n / FRAMES_PER_REGION) regions, validation and test get
    floor(0.1 b) regions each, train the first ones.

Versions: 2.0.0 made the synthetic patches frames of evolving regions; 2.1.0 changed the synthetic
regions' tilt scatter, flux balance and plage (`Builder.RELEASE_NOTES`). A data dir holding only an
older build is refused when read (`common.OldBuildError`, naming the rebuild command).

Beam: ``build("fits", ..., beam_runner=...)`` reads, preprocesses and scores the Br files inside a
Beam pipeline, 8 files a task (`common.build_dataset`); same examples and splits as a plain build.

Build log: ``build_log.json`` in the dataset directory (also `DatasetInfo.metadata` of the builder
that built it) lists ``failures`` (files that could not be used: path, reason) and ``ignored``
files (not SHARP CEA file names, duplicates in subfolders, bitmaps without a Br file), and counts
the ``unused_segments`` (Bp, Bt, magnetogram: checked for truncation, not read). Each failure is
also logged as a warning; the build goes on with the remaining files. (A split whose every Br file
fails to read cannot be written: TFDS then stops with "No examples were yielded".)
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.common import PATCH_SIZE
from solarjax import physics
from solarjax.data import synthetic
from solarjax.data.download import FITS_BLOCK_BYTES
from solarjax.data.fits import SHARP_CEA_PIXEL_MM, SharpPatch, SharpReadError, read_sharp
from solarjax.data.preprocess import preprocess_patch

CHUNK_SIZE = 256
"""Patches read or generated, and scored by one vectorised physics call (fixed shape: one compilation)."""

SHARP_FILE_NAME = re.compile(
    r"^hmi\.sharp_cea_720s\.(?P<harpnum>\d+)\.(?P<time>\d{8}_\d{6})_TAI\.(?P<segment>[A-Za-z]+)\.fits$"
)
"""JSOC export file name of one SHARP CEA segment."""

MAX_BIPOLES = synthetic.SyntheticConfig().max_bipoles
FRAMES_PER_REGION = synthetic.SyntheticConfig().frames_per_region

# Synthetic ground truth stored as `truth_<name>`: dtype and the neutral value real patches get.
_TRUTH_SCALARS = {
    "latitude_deg": (np.float32, np.nan, "latitude of the region, deg (signed)"),
    "hemisphere": (np.int32, 0, "+1 north, -1 south; 0 for real patches"),
    "cycle_parity": (np.int32, -1, "0 even cycle, 1 odd cycle; -1 for real patches"),
    "cycle": (np.int32, 0, "solar cycle number (e.g. 24); 0 for real patches"),
    "anti_hale": (np.bool_, False, "the region's orientation is against Hale's law"),
    "frame_index": (np.int32, -1, "frame of its region, 0.. in time order; -1 for real patches"),
    "age_days": (np.float32, np.nan, "days since the region's primary bipole began to emerge"),
    "flux_fraction": (np.float32, np.nan, "primary bipole's flux now / its peak"),
    "n_bipoles": (np.int32, 0, "number of bipoles; 0 for real patches"),
    "total_flux_mx": (np.float32, np.nan, "unsigned flux of the bipoles at this time (network excluded), Mx"),
    "mean_separation_mm": (np.float32, np.nan, "flux-weighted mean footpoint separation, Mm"),
    "mean_tilt_deg": (np.float32, np.nan, "flux-weighted mean tilt, deg (positive: Joy's sense)"),
    "delta": (np.bool_, False, "some bipole has a delta spot"),
    "noise_rms_gauss": (np.float32, np.nan, "noise rms in the 128x128 field, G"),
}
_TRUTH_BIPOLES = {
    "bipole_flux_mx": (np.float32, np.nan, "unsigned flux per bipole, Mx (NaN padding)"),
    "bipole_separation_mm": (np.float32, np.nan, "footpoint separation per bipole, Mm (NaN padding)"),
    "bipole_tilt_deg": (np.float32, np.nan, "tilt per bipole, deg (NaN padding)"),
    "bipole_leading_sign": (np.int32, 0, "sign of the leading polarity per bipole (0 padding)"),
    "bipole_delta": (np.bool_, False, "delta spot per bipole (False padding)"),
}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The `fits` config reads a JSOC export of SHARP CEA files, one segment per file, named
`hmi.sharp_cea_720s.<HARPNUM>.<YYYYMMDD_HHMMSS>_TAI.<segment>.fits`. Download them with

    solarjax data download <manual_dir> --start 2012-03-06 --end 2012-03-08 --segments Br bitmap --email <you>

(any JSOC export of `hmi.sharp_cea_720s` works), then build with

    solarjax data build --config fits --manual-dir <manual_dir> --data-dir <data_dir>

Br files become examples; a bitmap file of the same record is stored next to its Br.
"""


@dataclasses.dataclass
class SharpPatchesConfig(common.PatchesConfig):
    """A `sharp_patches` config (fields of `common.PatchesConfig`).

    ``num_examples`` of fits: at most this many Br files (the first in name order); ``seed``: see
    `solarjax.data.synthetic.generate`.
    """


class BuildLog(common.BuildLog):
    """`common.BuildLog` with ``unused_segments`` (segment name -> number of files checked but not read)."""

    def __init__(self):
        super().__init__(unused_segments={})


@dataclasses.dataclass(frozen=True)
class _BrFile:
    """A Br file of the manual dir, the HARP its name gives, and the bitmap of the same record."""

    path: pathlib.Path
    harpnum: int
    bitmap: pathlib.Path | None


@dataclasses.dataclass(frozen=True)
class _Chunk:
    """Up to `CHUNK_SIZE` preprocessed patches awaiting their physics.

    keys: example keys; images: float32 [n, 128, 128]; pixel_size_mm: float32 [n, 2];
    fields: per patch, every other feature.
    """

    keys: list
    images: np.ndarray
    pixel_size_mm: np.ndarray
    fields: list[dict[str, Any]]


def harp_split(harpnum: int) -> str:
    """The split of a HARP: `common.hash_split` of 'HARP<harpnum>'."""
    return common.hash_split(f"HARP{int(harpnum)}")


def resize_nearest(mask: np.ndarray, size: int = PATCH_SIZE) -> np.ndarray:
    """Nearest-neighbour resize of [H, W] to [size, size]: each output pixel takes the input pixel under its centre."""
    height, width = mask.shape
    rows = np.minimum(((np.arange(size) + 0.5) * height / size).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * width / size).astype(np.int64), width - 1)
    return mask[np.ix_(rows, cols)]


def _size_problem(size: int) -> str | None:
    """Why a file of ``size`` bytes cannot be a complete FITS file (JSOC writes whole 2880-byte blocks)."""
    if size == 0:
        return "empty file: 0 bytes"
    if size % FITS_BLOCK_BYTES:
        return f"truncated: {size} bytes is not a whole number of {FITS_BLOCK_BYTES}-byte FITS blocks"
    return None


def jsoc_record_name(harpnum: int, t_rec_raw: str) -> str:
    """JSOC record name, e.g. ``hmi.sharp_cea_720s[1449][2012.03.06_14:24:00_TAI]``."""
    return f"hmi.sharp_cea_720s[{harpnum}][{t_rec_raw}]"


def physics_feature_names() -> tuple[str, ...]:
    """Names of the stored quantities: `physics.QUANTITY_NAMES`, then the keys of
    `physics.physical_quantities` (found with ``jax.eval_shape``: traced, nothing computed)."""
    image = jax.ShapeDtypeStruct((1, PATCH_SIZE, PATCH_SIZE), np.float32)
    pixel_size_mm = jax.ShapeDtypeStruct((1, 2), np.float32)
    return tuple(physics.QUANTITY_NAMES) + tuple(jax.eval_shape(physics.physical_quantities, image, pixel_size_mm))


def physics_features(images: np.ndarray, pixel_size_mm: np.ndarray) -> dict[str, np.ndarray]:
    """`physics.quantities` and `physics.physical_quantities` of a chunk, padded to `CHUNK_SIZE` rows.

    Args:
      images: float32 [n, 128, 128] with n <= CHUNK_SIZE, B / 1000 G.
      pixel_size_mm: float32 [n, 2], (row, col) pixel size in Mm; NaN gives NaN physical values.

    Returns:
      quantity name -> float32 [n] (NaN where undefined).
    """
    n = len(images)
    padding = CHUNK_SIZE - n
    images = np.concatenate([images, np.zeros((padding, *images.shape[1:]), np.float32)])
    pixel_size_mm = np.concatenate([pixel_size_mm, np.ones((padding, 2), np.float32)])
    values = _physics_of_chunk(images, pixel_size_mm)
    return {name: np.asarray(value, dtype=np.float32)[:n] for name, value in values.items()}


@jax.jit
def _physics_of_chunk(images: jax.Array, pixel_size_mm: jax.Array) -> dict[str, jax.Array]:
    """Both physics functions in one compiled call: XLA shares their moments, and one jit of the
    fixed chunk shape runs ~20x faster on CPU than the op-by-op calls."""
    return {**physics.quantities(images), **physics.physical_quantities(images, pixel_size_mm)}


def _features() -> tfds.features.FeaturesDict:
    """Feature spec. Images are stored as raw bytes and bitmaps zlib-compressed: a proto float
    list of 16,384 values costs ~4 ms per example to write, raw bytes ~0.1 ms."""
    scalar, tensor, text = tfds.features.Scalar, tfds.features.Tensor, tfds.features.Text
    features = {
        "image": tensor(
            shape=(PATCH_SIZE, PATCH_SIZE, 1),
            dtype=np.float32,
            encoding=tfds.features.Encoding.BYTES,
            doc="Br / 1000 G clipped to [-1, 1], NaN -> 0, resized to 128x128",
        ),
        "bitmap": tensor(
            shape=(PATCH_SIZE, PATCH_SIZE, 1),
            dtype=np.uint8,
            encoding=tfds.features.Encoding.ZLIB,
            doc="SHARP bitmap segment (nearest resize); zeros when has_bitmap is False",
        ),
        "has_bitmap": scalar(dtype=np.bool_, doc="the record's bitmap file was read"),
        "harpnum": scalar(dtype=np.int64, doc="HARP number; synthetic: region id + 1"),
        "noaa_ar": scalar(dtype=np.int64, doc="NOAA active region number; 0 if none"),
        "t_rec": text(doc="observation time T_REC in UTC, ISO 8601 (synthetic: the frame's time)"),
        "lat_deg": scalar(dtype=np.float32, doc="Stonyhurst latitude of the patch centre, deg"),
        "lon_deg": scalar(dtype=np.float32, doc="Stonyhurst longitude of the patch centre, deg"),
        "original_shape": tensor(
            shape=(2,), dtype=np.int32, doc="(rows, cols) before resize; synthetic: the equivalent SHARP CEA shape"
        ),
        "pixel_size_mm": tensor(shape=(2,), dtype=np.float32, doc="(row, col) size of one 128x128 pixel, Mm"),
        "source": text(doc="'fits' or 'synthetic'"),
        "record": text(doc="JSOC record name, or synthetic[<seed>][<index>]"),
    }
    for name in physics_feature_names():
        features[name] = scalar(dtype=np.float32, doc=f"solarjax.physics quantity {name!r} (NaN: undefined)")
    for name, (dtype, _, doc) in _TRUTH_SCALARS.items():
        features[f"truth_{name}"] = scalar(dtype=dtype, doc=f"synthetic ground truth: {doc}")
    for name, (dtype, _, doc) in _TRUTH_BIPOLES.items():
        features[f"truth_{name}"] = tensor(shape=(MAX_BIPOLES,), dtype=dtype, doc=f"synthetic ground truth: {doc}")
    return tfds.features.FeaturesDict(features)


def _neutral_truth() -> dict[str, Any]:
    """Truth features of a real patch."""
    truth = {f"truth_{name}": dtype(value) for name, (dtype, value, _) in _TRUTH_SCALARS.items()}
    for name, (dtype, value, _) in _TRUTH_BIPOLES.items():
        truth[f"truth_{name}"] = np.full(MAX_BIPOLES, value, dtype=dtype)
    return truth


class Builder(common.PatchesBuilder):
    """SHARP CEA Br patches, synthetic (default) or from FITS files, as array_record."""

    VERSION = tfds.core.Version("2.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "2.0.0": "Synthetic patches are frames of evolving regions (harpnum, t_rec, lon_deg, more truth); "
        "synthetic splits keep whole regions.",
        "2.1.0": "Synthetic regions: Joy's-law scatter shrinks with flux, Laplace flux imbalance, plage as "
        "strong in both polarities and more tilted than the spots (KS to the real frames below "
        "the 5% critical value for tilt and net/unsigned flux).",
    }
    SYNTHETIC_BLOCK = FRAMES_PER_REGION
    BEAM_UNITS_PER_TASK = 8
    BUILDER_CONFIGS = [
        SharpPatchesConfig(
            name="synthetic",
            source="synthetic",
            num_examples=20_000,
            description="Synthetic active regions (solarjax.data.synthetic), with ground truth.",
        ),
        SharpPatchesConfig(
            name="fits",
            source="fits",
            description="Real SHARP CEA Br files from manual_dir, split by HARP.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "synthetic"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    MANUAL_DIR_HOLDS = "a folder of SHARP FITS files"

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=_features(),
            homepage="http://jsoc.stanford.edu/doc/data/hmi/sharp/sharp.htm",
            metadata=BuildLog(),
        )

    def _generate_examples(self, items: range | list[_BrFile]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yields (key, example): chunks of patches, their physics added in one vectorised call."""
        if self.builder_config.source == "fits":
            yield from fits_examples(items, self._fail)
            return
        for chunk in self._synthetic_chunks(items):
            yield from _chunk_examples(chunk)

    def _fits_example_fn(self) -> common.ExampleFn:
        return fits_examples

    # ------------------------------------------------------------------------------- synthetic
    def _synthetic_chunks(self, indices: range) -> Iterator[_Chunk]:
        seed = self.builder_config.seed
        for start in range(indices.start, indices.stop, CHUNK_SIZE):
            batch = synthetic.generate(min(CHUNK_SIZE, indices.stop - start), seed, start=start)
            shapes = np.rint(PATCH_SIZE * batch.pixel_size_mm / SHARP_CEA_PIXEL_MM).astype(np.int32)
            fields = []
            for i in range(len(batch)):
                example = {
                    "bitmap": np.zeros((PATCH_SIZE, PATCH_SIZE, 1), np.uint8),
                    "has_bitmap": False,
                    "harpnum": int(batch.truth["region_id"][i]) + 1,
                    "noaa_ar": 0,
                    "t_rec": f"{batch.truth['obs_time'][i]}+00:00",
                    "lat_deg": batch.truth["latitude_deg"][i],
                    "lon_deg": batch.truth["longitude_deg"][i],
                    "original_shape": shapes[i],
                    "source": "synthetic",
                    "record": f"synthetic[{seed}][{start + i}]",
                }
                for name, (dtype, _, _) in {**_TRUTH_SCALARS, **_TRUTH_BIPOLES}.items():
                    example[f"truth_{name}"] = np.asarray(batch.truth[name][i], dtype=dtype)
                fields.append(example)
            yield _Chunk(
                keys=list(range(start, start + len(batch))),
                images=batch.images.astype(np.float32),
                pixel_size_mm=batch.pixel_size_mm.astype(np.float32),
                fields=fields,
            )

    # ------------------------------------------------------------------------------------ fits
    def _plan_fits(self, manual_dir: pathlib.Path) -> dict[str, list[_BrFile]]:
        """Sorts the manual dir's files into Br files per split; logs bad, ignored and unused files."""
        log = self.info.metadata
        br_files: dict[tuple[int, str], pathlib.Path] = {}
        bitmaps: dict[tuple[int, str], pathlib.Path] = {}
        for path in common.manual_dir_files(manual_dir):
            match = SHARP_FILE_NAME.match(path.name)
            if match is None:
                self._ignore(
                    path, "not a SHARP CEA file name hmi.sharp_cea_720s.<HARPNUM>.<YYYYMMDD_HHMMSS>_TAI.<segment>.fits"
                )
                continue
            problem = _size_problem(path.stat().st_size)
            if problem is not None:
                self._fail(path, problem)
                continue
            record = (int(match["harpnum"]), match["time"])
            segment = match["segment"]
            if segment in ("Br", "bitmap"):
                kept = br_files if segment == "Br" else bitmaps
                if record in kept:
                    self._ignore(path, f"duplicate of {kept[record]}")
                else:
                    kept[record] = path
            else:
                log["unused_segments"][segment] = log["unused_segments"].get(segment, 0) + 1
        for record in sorted(bitmaps.keys() - br_files.keys()):
            self._ignore(bitmaps[record], "bitmap without a Br file of the same record")
        records = sorted(br_files)[: self._num_examples]
        if not records:
            raise FileNotFoundError(
                f"{manual_dir}: no usable hmi.sharp_cea_720s.*.Br.fits file "
                f"({len(log['failures'])} broken, {len(log['ignored'])} ignored)\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        files = [_BrFile(path=br_files[record], harpnum=record[0], bitmap=bitmaps.get(record)) for record in records]
        return common.group_by_split(files, lambda file: harp_split(file.harpnum))


def fits_examples(files: list[_BrFile], fail: common.FailFn) -> Iterator[tuple[str, dict[str, Any]]]:
    """(record name, example) of each readable Br file, in chunks of `CHUNK_SIZE`; ``fail(path, reason)``
    gets the files that cannot be used. Module-level, so Beam can ship it to its workers."""
    for chunk in _fits_chunks(files, fail):
        yield from _chunk_examples(chunk)


def _chunk_examples(chunk: _Chunk) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The chunk's (key, example) pairs, its physics computed in one vectorised call."""
    quantities = physics_features(chunk.images, chunk.pixel_size_mm)
    for i, key in enumerate(chunk.keys):
        example = dict(chunk.fields[i])
        example["image"] = chunk.images[i][..., None]
        example["pixel_size_mm"] = chunk.pixel_size_mm[i]
        example.update({name: value[i] for name, value in quantities.items()})
        yield key, example


def _fits_chunks(files: list[_BrFile], fail: common.FailFn) -> Iterator[_Chunk]:
    for start in range(0, len(files), CHUNK_SIZE):
        keys, images, pixel_sizes, fields = [], [], [], []
        for file in files[start : start + CHUNK_SIZE]:
            prepared = _read_br(file, fail)
            if prepared is None:
                continue
            image, pixel_size_mm, example = prepared
            keys.append(example["record"])
            images.append(image)
            pixel_sizes.append(pixel_size_mm)
            fields.append(example)
        if keys:
            yield _Chunk(keys=keys, images=np.stack(images), pixel_size_mm=np.stack(pixel_sizes), fields=fields)


def _read_br(file: _BrFile, fail: common.FailFn) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """(image [128, 128], pixel_size_mm [2], other features) of one Br file, or None after logging why not."""
    try:
        patch = read_sharp(file.path)
    except SharpReadError as error:
        fail(file.path, error.reason)
        return None
    if patch.segment != "Br" or patch.meta["harpnum"] != file.harpnum:
        fail(
            file.path,
            f"header says segment {patch.segment} of HARP {patch.meta['harpnum']}, "
            f"the file name Br of HARP {file.harpnum}",
        )
        return None
    prepared = preprocess_patch(patch, size=PATCH_SIZE)
    bitmap = _read_bitmap(file.bitmap, patch, fail) if file.bitmap is not None else None
    meta = patch.meta
    example = {
        "bitmap": (np.zeros((PATCH_SIZE, PATCH_SIZE), np.uint8) if bitmap is None else bitmap)[..., None],
        "has_bitmap": bitmap is not None,
        "harpnum": meta["harpnum"],
        "noaa_ar": meta["noaa_ar"],
        "t_rec": meta["t_rec"].isoformat(),
        "lat_deg": meta.get("lat_deg", np.nan),
        "lon_deg": meta.get("lon_deg", np.nan),
        "original_shape": np.asarray(prepared.original_shape, np.int32),
        "source": "fits",
        "record": jsoc_record_name(meta["harpnum"], meta["t_rec_raw"]),
        **_neutral_truth(),
    }
    pixel_size_mm = np.asarray(prepared.pixel_size_mm or (np.nan, np.nan), np.float32)
    return prepared.image, pixel_size_mm, example


def _read_bitmap(path: pathlib.Path, br: SharpPatch, fail: common.FailFn) -> np.ndarray | None:
    """The record's bitmap as uint8 [128, 128], or None after logging why it cannot be used."""
    try:
        bitmap = read_sharp(path)
    except SharpReadError as error:
        fail(path, error.reason)
        return None
    if bitmap.data.shape != br.data.shape:
        fail(path, f"bitmap shape {bitmap.data.shape} differs from its Br's {br.data.shape}")
        return None
    codes = np.nan_to_num(bitmap.data, nan=0.0)
    if codes.min() < 0 or codes.max() > 255 or np.any(codes != np.round(codes)):
        fail(path, f"bitmap values are not integer codes in 0..255 (range {codes.min()}..{codes.max()})")
        return None
    return resize_nearest(codes.astype(np.uint8))


def build(
    config_name: str,
    data_dir: str | os.PathLike,
    manual_dir: str | os.PathLike | None = None,
    num_examples: int | None = None,
    beam_runner: str | None = None,
    beam_options: Any = None,
) -> tfds.core.DatasetInfo:
    """Builds ``sharp_patches/<config_name>`` into ``data_dir``, replacing an earlier build.

    Args:
      config_name: 'synthetic' or 'fits'.
      data_dir: TFDS data directory; the dataset lands in ``<data_dir>/sharp_patches/<config>/<VERSION>``.
      manual_dir: folder of SHARP FITS files (fits config).
      num_examples: synthetic: patches in all splits (default 20,000); fits: at most this many Br files.
      beam_runner, beam_options: fits: generate through Beam (see `common.build_dataset`).

    Returns:
      The built dataset's info: ``info.splits[split].num_examples``, ``info.data_dir`` and
      ``info.metadata`` (the `BuildLog`, also written to ``<info.data_dir>/build_log.json``).
    """
    return common.build_dataset(
        Builder,
        config_name,
        data_dir,
        manual_dir,
        beam_runner=beam_runner,
        beam_options=beam_options,
        num_examples=num_examples,
    )

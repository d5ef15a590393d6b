"""Embedding tables: encoder embeddings of every patch of a dataset, with each row's metadata.

A table is a directory, append-only, written in parts::

    table.json                   manifest: format, table_id, encoder fingerprint, dim, columns, parts
    part-00000/embeddings.npy    float32 [rows_in_part, dim]
    part-00000/<column>.npy      one array [rows_in_part] per metadata column
    part-00001/...

Why this layout. 10^7 rows x 512 float32 is 20 GB: every ``.npy`` is opened with
``np.load(mmap_mode='r')`` and searched block by block, so the embeddings never need to fit in RAM;
metadata columns are separate arrays (a filter on latitude reads 8 bytes per row of one file,
never the rest). Appending writes a new part and then replaces the manifest atomically: old rows
are never re-embedded or rewritten, and a crash mid-append leaves the table as it was (a part
directory the manifest does not list is ignored and overwritten by the next append). One writer
at a time.

Columns. The core columns of the table's dataset (`CORE_COLUMNS` for `sharp_patches`,
`AIA_CORE_COLUMNS` for `aia_patches`; see `core_columns`) are present in every table of it (filled
with their missing value when the input lacks them); further per-row scalar columns (e.g. the synthetic ground truth ``n_bipoles``,
``delta``, ``hemisphere``) are fixed by the table's first part and required in every later one.
Column kinds: 'int' (int64), 'float' (float64, NaN missing), 'bool', 'text' (UTF-8 bytes) and
'time' (datetime64[s] UTC, NaT missing; see `filters.to_datetime64`).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import tqdm

from solarjax.fingerprint import FingerprintMismatchError
from solarjax.retrieval.filters import QUANTITY_NAMES, to_datetime64

TABLE_MANIFEST = "table.json"
TABLE_FORMAT = "solarjax.retrieval.table"
TABLE_VERSION = 1
EMBEDDINGS_FILE = "embeddings.npy"

CORE_COLUMNS: dict[str, tuple[str, Any]] = {
    "dataset": ("text", ""),
    "example_index": ("int", -1),
    "harpnum": ("int", 0),
    "noaa_ar": ("int", 0),
    "t_rec": ("time", None),
    "lat_deg": ("float", math.nan),
    "lon_deg": ("float", math.nan),
    **{name: ("float", math.nan) for name in QUANTITY_NAMES},
    "source": ("text", ""),
    "record": ("text", ""),
}
"""Columns of every table: name -> (kind, value used when the input does not give one).

dataset: where the row comes from (e.g. 'sharp_patches/fits/train'); example_index: the row's
index in that dataset split (-1 unknown); harpnum (0: none); noaa_ar (0: none); t_rec;
lat_deg/lon_deg: Stonyhurst latitude/longitude of the patch centre in degrees; the physics
quantities of `solarjax.physics` in normalised units; source: 'fits' or 'synthetic'; record: the
JSOC record name, e.g. 'hmi.sharp_cea_720s[1449][2012.03.06_14:24:00_TAI]'.
"""

AIA_CORE_COLUMNS: dict[str, tuple[str, Any]] = {
    "dataset": ("text", ""),
    "example_index": ("int", -1),
    "id": ("text", ""),
    "t_obs": ("time", None),
    "wavelengths": ("text", ""),
    "bbox": ("text", ""),
    "hpc_x": ("float", math.nan),
    "hpc_y": ("float", math.nan),
    "mu": ("float", math.nan),
    "source": ("text", ""),
}
"""Columns of every table of `aia_patches` (the AIA data contract's metadata): name -> (kind, missing).

id: the patch id; t_obs: observation time (UTC); wavelengths: the image channels in order, in
Angstrom, comma-joined ('171,193,211'); bbox: 'row0,row1,col0,col1' in the registered full-disk
grid (end exclusive); hpc_x/hpc_y: helioprojective patch centre in arcsec; mu: cosine of the
heliocentric angle at the patch centre (NaN off-disk); source: the source records or files.
"""

CME_CORE_COLUMNS: dict[str, tuple[str, Any]] = {
    "dataset": ("text", ""),
    "example_index": ("int", -1),
    "id": ("text", ""),
    "event": ("text", ""),
    "t_obs": ("time", None),
    "detector": ("text", ""),
    "kind": ("text", ""),
    **{name: ("float", math.nan) for name in ("cpa_deg", "width_deg", "front_height_rsun", "excess")},
    **{f"true_{name}": ("float", math.nan) for name in ("cpa_deg", "width_deg", "front_height_rsun", "excess")},
    "true_rare": ("int", -1),
    "source": ("text", ""),
}
"""Columns of every table of `cme_patches` (the CME data contract's metadata): name -> (kind, missing).

id: the patch id; event: the synthetic CME or the frame sequence; t_obs: time of the later frame (UTC;
NaT for synthetic); detector: 'C2' or 'C3'; kind: 'running' or 'base' difference; the measured CME
quantities of `solarjax.cme_physics` and the synthetic truth (NaN for files); true_rare: 1 for a planted
rare (double) CME, 0 not, -1 unknown; source: the files.
"""

DATASET_CORE_COLUMNS = {"sharp_patches": CORE_COLUMNS, "aia_patches": AIA_CORE_COLUMNS, "cme_patches": CME_CORE_COLUMNS}
TIME_COLUMNS = {"sharp_patches": "t_rec", "aia_patches": "t_obs", "cme_patches": "t_obs"}
"""The observation-time column of each dataset's tables (what a time filter reads)."""
DEFAULT_DATASET = "sharp_patches"


def core_columns(dataset_name: str) -> dict[str, tuple[str, Any]]:
    """The core columns of tables of a TFDS dataset ('sharp_patches' or 'aia_patches')."""
    if dataset_name not in DATASET_CORE_COLUMNS:
        raise ValueError(
            f"no embedding-table columns for dataset {dataset_name!r}; known: {sorted(DATASET_CORE_COLUMNS)}"
        )
    return DATASET_CORE_COLUMNS[dataset_name]


def dataset_features(dataset_name: str) -> tuple[str, ...]:
    """The features a table of ``dataset_name`` is built from: the image and every core metadata
    column the dataset provides (pass them as ``keys`` to `solarjax.data.pipeline.make_iterator`)."""
    return ("image", *(name for name in core_columns(dataset_name) if name not in ("dataset", "example_index")))


DATASET_FEATURES = dataset_features(DEFAULT_DATASET)
"""The `sharp_patches` features a table is built from (see `dataset_features`)."""

_KIND_DTYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_, "time": "datetime64[s]"}

EmbedFn = Callable[[Any], Any]
"""``embed_fn(images [B, H, W, C] float32) -> embeddings [B, D]`` (numpy or jax arrays)."""


class TableError(ValueError):
    """A table directory or one of its files is missing, partial or inconsistent."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = pathlib.Path(path)
        self.reason = reason


def check_fingerprint(what: str, stored: str, query: str) -> None:
    """Raises `FingerprintMismatchError` naming both fingerprints unless they are equal.

    Args:
      what: the thing that holds ``stored`` (e.g. "index /runs/idx"), for the message.
      stored: fingerprint of the encoder that made the stored embeddings.
      query: fingerprint of the encoder about to be used.
    """
    if stored != query:
        raise FingerprintMismatchError(
            f"{what} holds embeddings of the encoder with fingerprint {stored!r}, but the query "
            f"encoder has fingerprint {query!r}: embeddings of different encoders are not comparable. "
            "Rebuild the table and index with this encoder, or load the encoder they were built with."
        )


# ------------------------------------------------------------------------------------- columns
def _infer_kind(name: str, values: np.ndarray) -> str:
    """Column kind of an extra (non-core) column from its numpy dtype."""
    if values.dtype == np.bool_:
        return "bool"
    if np.issubdtype(values.dtype, np.integer):
        return "int"
    if np.issubdtype(values.dtype, np.floating):
        return "float"
    if np.issubdtype(values.dtype, np.datetime64):
        return "time"
    if values.dtype.kind in "US" or (values.dtype == object and all(isinstance(v, (str, bytes)) for v in values)):
        return "text"
    raise ValueError(f"metadata column {name!r} has values of dtype {values.dtype}, not int/float/bool/text/time")


def _column_array(name: str, kind: str, values: Any, num_rows: int) -> np.ndarray:
    """``values`` as the stored array of a column of ``kind``: shape [num_rows]."""
    if kind == "text":
        texts = [v.decode() if isinstance(v, (bytes, np.bytes_)) else str(v) for v in np.asarray(values).reshape(-1)]
        array = np.array([t.encode() for t in texts] or [b""], dtype="S")[: len(texts)]
    elif kind == "time":
        raw = np.asarray(values)
        if np.issubdtype(raw.dtype, np.datetime64):
            array = raw.astype("datetime64[s]").reshape(-1)
        else:
            array = np.array([to_datetime64(v) for v in raw.reshape(-1)], dtype="datetime64[s]")
    elif kind == "float":
        raw = np.asarray(values)
        if raw.dtype == object:
            raw = np.array([math.nan if v is None else v for v in raw.reshape(-1)])
        array = raw.astype(np.float64).reshape(-1)
    elif kind == "int":
        raw = np.asarray(values)
        if not (np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_):
            as_float = raw.astype(np.float64)
            if not np.all(np.isfinite(as_float) & (as_float == np.round(as_float))):
                raise ValueError(f"metadata column {name!r} must hold integers, got {raw[:5]!r}...")
        array = raw.astype(np.int64).reshape(-1)
    else:
        array = np.asarray(values).astype(np.bool_).reshape(-1)
    if len(array) != num_rows:
        raise ValueError(f"metadata column {name!r} has {len(array)} values for {num_rows} rows")
    return array


def _metadata_columns(
    metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]], core: Mapping[str, tuple[str, Any]]
) -> dict[str, Any]:
    """Metadata given as columns ({name: [N] values}) or as rows ([{name: value}]) -> columns."""
    if isinstance(metadata, Mapping):
        return dict(metadata)
    rows = list(metadata)
    names = sorted({name for row in rows for name in row})
    missing = {name: core[name][1] if name in core else None for name in names}
    return {name: [row.get(name, missing[name]) for row in rows] for name in names}


def _stored_columns(
    metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    num_rows: int,
    schema: Mapping[str, str] | None,
    core: Mapping[str, tuple[str, Any]],
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Converts metadata to stored column arrays; checks it against ``schema`` (None: new table)
    whose core columns are ``core``.

    Returns:
      (schema {name: kind}, {name: array [num_rows]}).
    """
    given = _metadata_columns(metadata, core)
    if schema is None:
        schema = {name: kind for name, (kind, _) in core.items()}
        for name in sorted(set(given) - set(core)):
            values = np.asarray(given[name])
            if values.ndim != 1:
                raise ValueError(f"metadata column {name!r} has shape {values.shape}: a column holds one value per row")
            schema[name] = _infer_kind(name, values)
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise ValueError(f"metadata columns {unknown} are not in the table's columns {sorted(schema)}")
    absent_extras = sorted(set(schema) - set(core) - set(given))
    if absent_extras:
        raise ValueError(f"metadata lacks the table's columns {absent_extras}")
    arrays = {}
    for name, kind in schema.items():
        values = given[name] if name in given else [core[name][1]] * num_rows
        arrays[name] = _column_array(name, kind, values, num_rows)
    return dict(schema), arrays


def _python_values(kind: str, values: np.ndarray) -> list[Any]:
    """Stored values [n] as plain Python: text -> str, time -> ISO str (None for NaT), else numbers."""
    if kind == "text":
        return [bytes(v).decode() for v in values]
    if kind == "time":
        iso = np.datetime_as_string(values.astype("datetime64[s]"), unit="s")
        return [None if missing else text for missing, text in zip(np.isnat(values).tolist(), iso.tolist())]
    return values.tolist()


# --------------------------------------------------------------------------------------- table
class Table:
    """An opened embedding table (read side). Open one with `open_table`.

    Attributes:
      path: the table directory.
      table_id: random id given at creation (an index records it to find its own table).
      dataset_name: the TFDS dataset of the rows ('sharp_patches' or 'aia_patches'), which fixes
        the core columns and the time column (`time_column`).
      fingerprint: fingerprint of the encoder that made the embeddings.
      dim: embedding dimension D.
      columns: {name: kind} of the metadata columns.
      num_rows: N, rows over all parts.
    """

    def __init__(self, path: pathlib.Path, manifest: Mapping[str, Any]):
        self.path = path
        self.table_id: str = manifest["table_id"]
        self.dataset_name: str = manifest.get("dataset_name", DEFAULT_DATASET)
        self.fingerprint: str = manifest["fingerprint"]
        self.dim: int = int(manifest["dim"])
        self.columns: dict[str, str] = dict(manifest["columns"])
        self._part_names = tuple(part["name"] for part in manifest["parts"])
        self._part_rows = np.array([int(part["rows"]) for part in manifest["parts"]], dtype=np.int64)
        self._part_starts = np.concatenate([[0], np.cumsum(self._part_rows)]).astype(np.int64)
        self._arrays: dict[tuple[int, str], np.ndarray] = {}
        self._column_cache: dict[str, np.ndarray] = {}

    @property
    def num_rows(self) -> int:
        return int(self._part_starts[-1])

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return f"Table({str(self.path)!r}, rows={self.num_rows}, dim={self.dim}, fingerprint={self.fingerprint!r})"

    def _array(self, part: int, name: str) -> np.ndarray:
        """Memory map of one part's embeddings (name EMBEDDINGS_FILE) or column, validated once."""
        key = (part, name)
        if key not in self._arrays:
            file = self.path / self._part_names[part] / (name if name == EMBEDDINGS_FILE else f"{name}.npy")
            rows = int(self._part_rows[part])
            if name == EMBEDDINGS_FILE:
                expected_shape, expected_dtype = (rows, self.dim), np.dtype(np.float32)
            else:
                kind = self.columns[name]
                expected_shape = (rows,)
                expected_dtype = None if kind == "text" else np.dtype(_KIND_DTYPES[kind])
            self._arrays[key] = _load_array(file, expected_shape, expected_dtype)
        return self._arrays[key]

    def validate(self) -> None:
        """Opens every file of every part (headers and sizes only); raises `TableError` on a bad one."""
        for part in range(len(self._part_names)):
            self._array(part, EMBEDDINGS_FILE)
            for name in self.columns:
                self._array(part, name)

    def embedding_blocks(self, block_rows: int, num_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """The first ``num_rows`` embeddings (default all) in memory-mapped blocks.

        Yields:
          (first row, float32 [<= block_rows, D]) in row order; blocks never span two parts.
        """
        stop_row = self.num_rows if num_rows is None else num_rows
        for part in range(len(self._part_names)):
            part_start = int(self._part_starts[part])
            if part_start >= stop_row:
                return
            embeddings = self._array(part, EMBEDDINGS_FILE)
            part_stop = min(len(embeddings), stop_row - part_start)
            for start in range(0, part_stop, block_rows):
                yield part_start + start, embeddings[start : min(start + block_rows, part_stop)]

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(part, row within part) of each global row number; raises IndexError when out of range."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise IndexError(f"rows out of range [0, {self.num_rows}) in table {self.path}")
        parts = np.searchsorted(self._part_starts, rows, side="right") - 1
        return parts, rows - self._part_starts[parts]

    def _gather(self, name: str, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        parts, local = self._locate(rows)
        pieces = {part: self._array(part, name)[local[parts == part]] for part in np.unique(parts)}
        if not pieces:
            shape = (0, self.dim) if name == EMBEDDINGS_FILE else (0,)
            dtype = np.float32 if name == EMBEDDINGS_FILE else _KIND_DTYPES.get(self.columns[name], "S1")
            return np.zeros(shape, dtype)
        out = np.empty((len(parts),) + next(iter(pieces.values())).shape[1:], np.result_type(*pieces.values()))
        for part, values in pieces.items():
            out[parts == part] = values
        return out

    def embeddings(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 [len(rows), D]: the embeddings of the given rows (any order, repeats allowed)."""
        return self._gather(EMBEDDINGS_FILE, rows)

    def all_embeddings(self, num_rows: int | None = None) -> np.ndarray:
        """float32 [num_rows, D] of the first ``num_rows`` rows (default all), read into RAM."""
        blocks = [block for _, block in self.embedding_blocks(1 << 20, num_rows)]
        return np.concatenate(blocks) if blocks else np.zeros((0, self.dim), np.float32)

    def column(self, name: str) -> np.ndarray:
        """A whole metadata column [N] (cached after the first read)."""
        if name not in self.columns:
            raise KeyError(f"table {self.path} has no column {name!r}; columns: {sorted(self.columns)}")
        if name not in self._column_cache:
            pieces = [self._array(part, name) for part in range(len(self._part_names))]
            if pieces:
                self._column_cache[name] = np.concatenate(pieces)
            else:
                self._column_cache[name] = np.zeros(0, _KIND_DTYPES.get(self.columns[name], "S1"))
        return self._column_cache[name]

    @property
    def time_column(self) -> str:
        """Name of the observation-time column ('t_rec' for SHARPs, 't_obs' for AIA patches)."""
        return TIME_COLUMNS[self.dataset_name]

    def filter_column(self, name: str) -> np.ndarray:
        """A column [N] as the search filters read it (`solarjax.retrieval.filters`): 't_rec' is
        the observation time (`time_column`), and 'harpnum' is 0 (no HARP) in tables without HARPs."""
        if name == "t_rec":
            return self.column(self.time_column)
        if name == "harpnum" and name not in self.columns:
            return self._column_cache.setdefault(name, np.zeros(self.num_rows, np.int64))
        return self.column(name)

    def rows(self, rows: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        """Metadata of the given rows as plain Python dicts (text as str, times as ISO str or None)."""
        names = list(self.columns)
        values = [_python_values(self.columns[name], self._gather(name, rows)) for name in names]
        return [dict(zip(names, row)) for row in zip(*values)]


def _load_array(file: pathlib.Path, shape: tuple[int, ...], dtype: np.dtype | None) -> np.ndarray:
    """Memory-maps one ``.npy`` file and checks its shape and dtype (text: any bytes dtype)."""
    if not file.is_file():
        raise TableError(file, "missing: the table is incomplete (interrupted write or files deleted)")
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise TableError(file, f"not a readable .npy file (truncated or corrupted): {err}") from err
    if array.shape != shape:
        raise TableError(file, f"holds shape {array.shape}, the manifest says {shape}")
    if dtype is None:
        if array.dtype.kind != "S":
            raise TableError(file, f"holds dtype {array.dtype}, expected UTF-8 bytes")
    elif array.dtype != dtype:
        raise TableError(file, f"holds dtype {array.dtype}, expected {dtype}")
    return array


# --------------------------------------------------------------------------------- read/write
def _read_manifest(path: pathlib.Path) -> dict[str, Any]:
    file = path / TABLE_MANIFEST
    if not file.is_file():
        raise TableError(
            file, "missing: not an embedding table (build one with build_table_from_arrays or embed_dataset)"
        )
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TableError(file, f"not valid JSON (truncated or corrupted): {err}") from err
    if manifest.get("format") != TABLE_FORMAT or manifest.get("version") != TABLE_VERSION:
        raise TableError(
            file,
            f"format {manifest.get('format')!r} version {manifest.get('version')!r}, "
            f"expected {TABLE_FORMAT!r} version {TABLE_VERSION}",
        )
    missing = {"table_id", "fingerprint", "dim", "columns", "parts"} - set(manifest)
    if missing:
        raise TableError(file, f"manifest lacks {sorted(missing)}")
    return manifest


def _write_json_atomically(file: pathlib.Path, content: Mapping[str, Any]) -> None:
    temporary = file.with_name(f".{file.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps(content, indent=1))
    os.replace(temporary, file)


def open_table(path: str | os.PathLike, expected_fingerprint: str | None = None) -> Table:
    """Opens a table directory and checks every file of it.

    Args:
      path: the table directory.
      expected_fingerprint: when given, the fingerprint of the encoder that will query the table.

    Raises:
      TableError: missing, partial or corrupted files (the message names the file).
      FingerprintMismatchError: ``expected_fingerprint`` differs from the table's.
    """
    path = pathlib.Path(path)
    table = Table(path, _read_manifest(path))
    table.validate()
    if expected_fingerprint is not None:
        check_fingerprint(f"table {path}", table.fingerprint, expected_fingerprint)
    return table


def _create_table(path: pathlib.Path, fingerprint: str, dim: int, schema: Mapping[str, str], dataset_name: str) -> None:
    if (path / TABLE_MANIFEST).exists():
        raise FileExistsError(f"{path} already holds an embedding table: append to it with append_rows")
    if not fingerprint:
        raise ValueError("an embedding table needs the encoder's fingerprint (a non-empty string)")
    path.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "table_id": uuid.uuid4().hex,
        "dataset_name": dataset_name,
        "fingerprint": fingerprint,
        "dim": int(dim),
        "columns": dict(schema),
        "parts": [],
    }
    _write_json_atomically(path / TABLE_MANIFEST, manifest)


def _checked_embeddings(embeddings: Any, dim: int | None) -> np.ndarray:
    array = np.asarray(embeddings, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"embeddings must be [N, D] with D > 0, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"embeddings have dimension {array.shape[1]}, the table holds {dim}")
    bad = np.flatnonzero(~np.all(np.isfinite(array), axis=1))
    if bad.size:
        raise ValueError(f"{bad.size} embeddings are not finite (first bad row {bad[0]}): the encoder produced NaN/Inf")
    return array


def append_rows(
    path: str | os.PathLike,
    embeddings: Any,
    metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    fingerprint: str,
) -> Table:
    """Appends rows to an existing table as one new part; earlier rows are not touched.

    Args:
      path: the table directory.
      embeddings: [n, D] embeddings of the new rows.
      metadata: the new rows' metadata, as columns ({name: [n] values}) or rows ([{name: value}]).
        Core columns may be absent (missing values); the table's extra columns must be present.
      fingerprint: fingerprint of the encoder that made ``embeddings``; must equal the table's.

    Returns:
      The table, reopened with the new rows.

    Raises:
      FingerprintMismatchError, ValueError (bad shapes, unknown or missing columns), TableError.
    """
    path = pathlib.Path(path)
    manifest = _read_manifest(path)
    check_fingerprint(f"table {path}", manifest["fingerprint"], fingerprint)
    array = _checked_embeddings(embeddings, int(manifest["dim"]))
    core = core_columns(manifest.get("dataset_name", DEFAULT_DATASET))
    _, columns = _stored_columns(metadata, len(array), manifest["columns"], core)
    name = f"part-{len(manifest['parts']):05d}"
    staging = path / f".{name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    np.save(staging / EMBEDDINGS_FILE, array)
    for column, values in columns.items():
        np.save(staging / f"{column}.npy", values)
    final = path / name
    if final.exists():  # left by an append that crashed before updating the manifest
        shutil.rmtree(final)
    os.rename(staging, final)
    manifest["parts"].append({"name": name, "rows": len(array)})
    _write_json_atomically(path / TABLE_MANIFEST, manifest)
    return open_table(path)


def build_table_from_arrays(
    out_dir: str | os.PathLike,
    embeddings: Any,
    metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    fingerprint: str,
    *,
    dataset_name: str = DEFAULT_DATASET,
) -> Table:
    """Creates a new table from embeddings already computed.

    Args:
      out_dir: directory of the new table (created; must not hold a table already).
      embeddings: [N, D] float embeddings.
      metadata: per-row metadata as columns ({name: [N] values}) or rows ([{name: value}]);
        see `core_columns`; any further scalar columns are kept as extra columns.
      fingerprint: fingerprint of the encoder that made ``embeddings``.
      dataset_name: the rows' dataset, 'sharp_patches' or 'aia_patches' (fixes the core columns).

    Returns:
      The opened table.
    """
    out_dir = pathlib.Path(out_dir)
    array = _checked_embeddings(embeddings, None)
    schema, _ = _stored_columns(metadata, len(array), None, core_columns(dataset_name))
    _create_table(out_dir, fingerprint, array.shape[1], schema, dataset_name)
    return append_rows(out_dir, array, metadata, fingerprint)


# ------------------------------------------------------------------------------------ embedding
def embed_images(embed_fn: EmbedFn, images: Any, batch_size: int = 256) -> np.ndarray:
    """Embeds images in fixed-shape batches (the last one zero-padded, so a jitted encoder compiles once).

    Args:
      embed_fn: ``embed_fn(images [B, H, W, C] float32) -> [B, D]``.
      images: [N, H, W] or [N, H, W, C] patches (Br: B / 1000 G in [-1, 1], C = 1; AIA: C
        normalised channels).
      batch_size: rows per call, rounded up to a multiple of the device count; each batch is
        sharded over all devices on its first axis.

    Returns:
      float32 [N, D].
    """
    images = _as_image_batch(images)
    batch_size = _device_multiple(min(batch_size, max(len(images), 1)))
    sharding = _batch_sharding()
    pieces = [
        _embed_padded(embed_fn, images[start : start + batch_size], batch_size, sharding)
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(pieces) if pieces else np.zeros((0, 0), np.float32)


def _as_image_batch(images: Any) -> np.ndarray:
    """[N, H, W] or [N, H, W, C] -> float32 [N, H, W, C] (C = 1 for the former)."""
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise ValueError(f"images must be [N, H, W] or [N, H, W, C], got shape {array.shape}")
    return array


def _device_multiple(rows: int) -> int:
    devices = jax.local_device_count()
    return -(-rows // devices) * devices


def _batch_sharding() -> jax.sharding.NamedSharding:
    """Shards the batch axis over this process's devices (replicated on one device). Local, not global:
    in a jax.distributed job each host embeds its own batches (`solarjax.retrieval.hosts`)."""
    mesh = jax.make_mesh(
        (jax.local_device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.local_devices()
    )
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))


def _padded(images: np.ndarray, batch_size: int) -> np.ndarray:
    """images [b <= batch_size, ...] zero-padded to exactly ``batch_size`` rows."""
    if len(images) > batch_size:
        raise ValueError(f"a batch of {len(images)} rows is larger than the fixed batch size {batch_size}")
    padded = np.zeros((batch_size,) + images.shape[1:], np.float32)
    padded[: len(images)] = images
    return padded


def _embed_padded(
    embed_fn: EmbedFn, images: np.ndarray, batch_size: int, sharding: jax.sharding.Sharding
) -> np.ndarray:
    """Embeds ``images`` [b <= batch_size, H, W, C] as one batch of exactly ``batch_size`` rows."""
    embeddings = np.asarray(embed_fn(jax.device_put(_padded(images, batch_size), sharding)), dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != batch_size:
        raise ValueError(
            f"embed_fn returned shape {embeddings.shape} for a batch of {batch_size} images; expected [{batch_size}, D]"
        )
    return embeddings[: len(images)]


def _joined_integers(values: np.ndarray) -> list[str]:
    """Rows of an integer array [n, m] as text 'v0,v1,...' (e.g. wavelengths, bounding boxes)."""
    return [",".join(str(int(v)) for v in row) for row in np.asarray(values)]


def _batch_metadata(
    batch: Mapping[str, Any],
    images: np.ndarray,
    batch_size: int,
    dataset: str,
    first_index: int,
    core: Mapping[str, tuple[str, Any]],
) -> dict[str, Any]:
    """Per-row features of a dataset batch as table columns; images and other vectors are left out.

    Text features (bytes) stay text; integer vectors [b, m] of core text columns (AIA wavelengths
    and bbox) become comma-joined text; 'example_index' defaults to the running position in the
    stream and 'dataset' to ``dataset``; core physics quantities missing from the batch are
    computed from its images [b, H, W, 1] with `solarjax.physics.quantities` (padded to
    ``batch_size`` rows, so that it compiles once).
    """
    rows = len(images)
    columns = {}
    for name, values in batch.items():
        values = np.asarray(values)
        if name != "image" and values.shape == (rows,):
            columns[name] = values
        elif core.get(name, ("",))[0] == "text" and values.ndim == 2 and np.issubdtype(values.dtype, np.integer):
            columns[name] = _joined_integers(values)
    columns.setdefault("dataset", [dataset] * rows)
    columns.setdefault("example_index", np.arange(first_index, first_index + rows))
    missing_quantities = [name for name in QUANTITY_NAMES if name in core and name not in columns]
    if missing_quantities:
        from solarjax import physics

        computed = physics.quantities(_padded(images, batch_size)[..., 0])
        columns.update({name: np.asarray(computed[name])[:rows] for name in missing_quantities})
    return columns


def embed_dataset(
    out_dir: str | os.PathLike,
    embed_fn: EmbedFn,
    fingerprint: str,
    batches: Iterable[Mapping[str, Any]],
    *,
    dataset: str = "",
    dataset_name: str = DEFAULT_DATASET,
    rows_per_part: int = 100_000,
    total_batches: int | None = None,
) -> Table:
    """Embeds a stream of dataset batches into a table (created, or appended to when it exists).

    Every batch is padded to the size of the first one (rounded up to a multiple of the device
    count) and sharded over all devices, so a jitted ``embed_fn`` compiles once and runs data
    parallel. Rows are buffered and written in parts of about ``rows_per_part`` rows. One
    process writes the table (the embeddings of each batch are gathered on it).

    Args:
      out_dir: table directory; an existing table must carry the same ``fingerprint``.
      embed_fn: ``embed_fn(images [B, H, W, C] float32) -> [B, D]``, e.g. ``ssl.load(w).embed``.
      fingerprint: the encoder's fingerprint.
      batches: dicts with 'image' [B, H, W, C] (or [B, H, W]) and per-row metadata arrays [B]
        (the features `dataset_features(dataset_name)` of `solarjax.data.pipeline.make_iterator`
        with ``shuffle=False``); see `core_columns` for the names used; integer vectors [B, m] of
        core text columns are stored comma-joined, other feature arrays are not stored.
      dataset: value of the 'dataset' column when batches do not carry one; 'example_index'
        defaults to the position in this stream (0, 1, ...).
      dataset_name: the TFDS dataset of the batches, 'sharp_patches' or 'aia_patches'.
      rows_per_part: rows per written part.
      total_batches: number of batches, for the progress bar only.

    Returns:
      The opened table.
    """
    out_dir = pathlib.Path(out_dir)
    core = core_columns(dataset_name)
    if (out_dir / TABLE_MANIFEST).exists():
        existing = open_table(out_dir, expected_fingerprint=fingerprint)
        if existing.dataset_name != dataset_name:
            raise ValueError(f"table {out_dir} holds rows of {existing.dataset_name}, not {dataset_name}")
    sharding = _batch_sharding()
    batch_size = None
    buffered_embeddings: list[np.ndarray] = []
    buffered_metadata: list[dict[str, Any]] = []
    buffered_rows = 0
    index = 0
    for batch in tqdm.tqdm(batches, total=total_batches, unit="batch", desc="embedding"):
        images = _as_image_batch(batch["image"])
        if batch_size is None:
            batch_size = _device_multiple(len(images))
        buffered_embeddings.append(_embed_padded(embed_fn, images, batch_size, sharding))
        buffered_metadata.append(_batch_metadata(batch, images, batch_size, dataset, index, core))
        buffered_rows += len(images)
        index += len(images)
        if buffered_rows >= rows_per_part:
            _write_part(out_dir, fingerprint, buffered_embeddings, buffered_metadata, dataset_name)
            buffered_embeddings, buffered_metadata, buffered_rows = [], [], 0
    if buffered_rows:
        _write_part(out_dir, fingerprint, buffered_embeddings, buffered_metadata, dataset_name)
    return open_table(out_dir)


def _write_part(
    out_dir: pathlib.Path,
    fingerprint: str,
    embeddings: list[np.ndarray],
    metadata: list[dict[str, Any]],
    dataset_name: str,
) -> None:
    """Writes buffered batches as one part, creating the table on the first part."""
    array = np.concatenate(embeddings)
    columns = {name: np.concatenate([np.asarray(m[name]) for m in metadata]) for name in metadata[0]}
    if (out_dir / TABLE_MANIFEST).exists():
        append_rows(out_dir, array, columns, fingerprint)
    else:
        build_table_from_arrays(out_dir, array, columns, fingerprint, dataset_name=dataset_name)

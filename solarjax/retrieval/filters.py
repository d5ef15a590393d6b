"""Search filters: which table rows a query may return.

A `Filters` value says which rows are allowed; it is applied *before* the top-k, so a search
returns k results whenever at least k allowed rows (k allowed HARPs with ``one_per_harp``) exist.
Filters split into three parts that the indexes evaluate separately:

* a row mask [N] that does not depend on the query (time range, HARP include/exclude,
  hemisphere, latitude range, mu range, CME position-angle range, ranges on physics quantities):
  `row_mask`;
* a query mask [Q, C] over a block of C rows that does (the query's own HARP within +-N days,
  the query's own row): `query_mask`;
* grouping for "one result per HARP": `group_ids`.

What a query is known to be comes in a `QueryContext`: its HARP, its T_REC and, for a query taken
from the table, its row. A generated patch has none of these, so only the row filters apply to it.

Conventions:
  * HARP numbers start at 1; a row with ``harpnum <= 0`` (a synthetic patch) belongs to no HARP.
    HARP filters never allow it through an include list, and "one result per HARP" treats each
    such row as its own group.
  * Times are UTC at one-second resolution (a SHARP's T_REC converted from TAI, as
    `solarjax.data.read_sharp` gives it; an AIA patch's T_OBS); ranges are inclusive at both ends.
    Tables name their observation-time column ('t_rec', or 't_obs' for `aia_patches`); the
    filters read it as 't_rec' (`solarjax.retrieval.table.Table.filter_column`).
  * mu is the cosine of the heliocentric angle at the patch centre (1 at disk centre, 0 at the
    limb; AIA tables), NaN off-disk.
  * Latitude in degrees (Stonyhurst, patch centre); north is ``lat_deg > 0``, south ``< 0``.
  * A row whose value is missing (NaN quantity or latitude, NaT time) fails every filter on it.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

QUANTITY_NAMES = ("tuf", "tpf", "tnf", "net_flux", "psep", "tilt", "area", "lead_polarity", "r_value")
"""Physics quantities stored per table row (the names of `solarjax.physics.QUANTITY_NAMES`)."""

HEMISPHERES = ("north", "south")

SECONDS_PER_DAY = 86_400

TimeLike = str | datetime.datetime | np.datetime64 | None


def to_datetime64(value: TimeLike) -> np.datetime64:
    """One time as a UTC ``datetime64[s]``; None and '' become NaT.

    Accepts ISO 8601 text ('2012-03-06T14:23:26', with 'Z' or an offset such as '+00:00'), a JSOC
    T_REC ('2012.03.06_14:24:00_TAI', converted from TAI to UTC like `solarjax.data.read_sharp`
    does), a datetime (naive means UTC; an aware one is converted) or a datetime64.

    Raises:
      ValueError: text that is not a time.
    """
    if value is None or (isinstance(value, (str, bytes)) and not value):
        return np.datetime64("NaT", "s")
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("_TAI"):
                from solarjax.data.fits import parse_t_rec, tai_to_utc

                value = tai_to_utc(parse_t_rec(text))
            else:
                value = datetime.datetime.fromisoformat(text)
        except ValueError as err:
            raise ValueError(f"{text!r} is not an ISO 8601 time or a JSOC T_REC") from err
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return np.datetime64(value, "s")
    return np.datetime64(value, "s")


@dataclasses.dataclass(frozen=True)
class Filters:
    """Which rows a search may return. Every field left at its default allows everything.

    Attributes:
      t_rec_range: (start, end) bounds on the observation time (T_REC; t_obs of AIA patches),
        inclusive; either may be None (open).
      harp_include: only these HARP numbers (None: any HARP, and rows without one).
      harp_exclude: never these HARP numbers.
      one_per_harp: at most one result per HARP (the nearest of its frames).
      exclude_own_harp_days: drop rows of the query's own HARP whose T_REC lies within this many
        days of the query's (near-duplicate suppression); a query with a HARP but no time drops
        the whole HARP. Queries without a HARP are unaffected.
      hemisphere: 'north' or 'south'.
      lat_range: (min, max) latitude in degrees, inclusive.
      mu_range: (min, max) of mu, inclusive; either bound may be None (tables with a 'mu' column).
      pa_range: (start, end) central position angle in degrees (CME tables' 'cpa_deg' column), the arc
        from start counterclockwise (increasing PA) to end, inclusive: (330, 30) is the 60 deg about
        north, (0, 360) every angle. A halo's CPA is measured but not meaningful.
      quantity_ranges: {quantity: (min, max)} on the stored physics quantities (normalised
        units, see `solarjax.physics`), inclusive; either bound may be None.
      exclude_self: a query taken from the table never returns its own row.
    """

    t_rec_range: tuple[TimeLike, TimeLike] | None = None
    harp_include: Sequence[int] | None = None
    harp_exclude: Sequence[int] = ()
    one_per_harp: bool = False
    exclude_own_harp_days: float | None = None
    hemisphere: str | None = None
    lat_range: tuple[float, float] | None = None
    mu_range: tuple[float | None, float | None] | None = None
    pa_range: tuple[float, float] | None = None
    quantity_ranges: Mapping[str, tuple[float | None, float | None]] = dataclasses.field(default_factory=dict)
    exclude_self: bool = True

    def __post_init__(self):
        if self.t_rec_range is not None:
            start, end = (to_datetime64(t) for t in self.t_rec_range)
            if not np.isnat(start) and not np.isnat(end) and start > end:
                raise ValueError(f"t_rec_range starts after it ends: {self.t_rec_range}")
            object.__setattr__(self, "t_rec_range", (start, end))
        if self.harp_include is not None:
            object.__setattr__(self, "harp_include", tuple(int(h) for h in self.harp_include))
        object.__setattr__(self, "harp_exclude", tuple(int(h) for h in self.harp_exclude))
        if self.exclude_own_harp_days is not None and not self.exclude_own_harp_days >= 0:
            raise ValueError(f"exclude_own_harp_days must be >= 0, got {self.exclude_own_harp_days}")
        if self.hemisphere is not None and self.hemisphere not in HEMISPHERES:
            raise ValueError(f"hemisphere must be one of {HEMISPHERES}, got {self.hemisphere!r}")
        if self.lat_range is not None:
            object.__setattr__(self, "lat_range", _checked_range("lat_range", self.lat_range))
        if self.mu_range is not None:
            object.__setattr__(self, "mu_range", _checked_range("mu_range", self.mu_range))
        if self.pa_range is not None:
            if len(self.pa_range) != 2:
                raise ValueError(f"pa_range must be a (start, end) pair in degrees, got {self.pa_range!r}")
            start, end = (float(a) for a in self.pa_range)
            if not (0.0 <= start < 360.0 and 0.0 <= end <= 360.0):
                raise ValueError(f"pa_range must have 0 <= start < 360 and 0 <= end <= 360 deg, got {self.pa_range!r}")
            object.__setattr__(self, "pa_range", (start, end))
        unknown = sorted(set(self.quantity_ranges) - set(QUANTITY_NAMES))
        if unknown:
            raise ValueError(f"unknown quantities {unknown} in quantity_ranges; known: {QUANTITY_NAMES}")
        object.__setattr__(
            self,
            "quantity_ranges",
            {name: _checked_range(name, bounds) for name, bounds in self.quantity_ranges.items()},
        )

    @property
    def has_row_filters(self) -> bool:
        """Whether any query-independent filter is set."""
        return (
            self.t_rec_range is not None
            or self.harp_include is not None
            or bool(self.harp_exclude)
            or self.hemisphere is not None
            or self.lat_range is not None
            or self.mu_range is not None
            or self.pa_range is not None
            or bool(self.quantity_ranges)
        )


def _checked_range(name: str, bounds: Sequence[float | None]) -> tuple[float, float]:
    """(min, max) with None as -inf/+inf; raises if it is not a pair or min > max."""
    if len(bounds) != 2:
        raise ValueError(f"{name} must be a (min, max) pair, got {bounds!r}")
    low = -math.inf if bounds[0] is None else float(bounds[0])
    high = math.inf if bounds[1] is None else float(bounds[1])
    if low > high:
        raise ValueError(f"{name} range is empty: min {low} > max {high}")
    return low, high


@dataclasses.dataclass(frozen=True)
class QueryContext:
    """What is known about each of Q queries.

    Attributes:
      harpnum: int64 [Q], the query's HARP, <= 0 when it has none (a generated patch).
      t_rec: datetime64[s] [Q], the query's T_REC, NaT when unknown.
      row: int64 [Q], the table row the query was taken from, -1 for an outside query.
    """

    harpnum: np.ndarray
    t_rec: np.ndarray
    row: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "harpnum", np.asarray(self.harpnum, dtype=np.int64).reshape(-1))
        object.__setattr__(self, "t_rec", np.asarray(self.t_rec, dtype="datetime64[s]").reshape(-1))
        object.__setattr__(self, "row", np.asarray(self.row, dtype=np.int64).reshape(-1))
        if not len(self.harpnum) == len(self.t_rec) == len(self.row):
            raise ValueError(
                f"QueryContext arrays differ in length: harpnum {len(self.harpnum)}, "
                f"t_rec {len(self.t_rec)}, row {len(self.row)}"
            )

    def __len__(self) -> int:
        return len(self.row)

    @classmethod
    def unknown(cls, num_queries: int) -> QueryContext:
        """Context of queries about which nothing is known (generated patches, bare arrays)."""
        return cls(
            harpnum=np.zeros(num_queries, np.int64),
            t_rec=np.full(num_queries, np.datetime64("NaT", "s")),
            row=np.full(num_queries, -1, np.int64),
        )

    @classmethod
    def from_metadata(cls, metadata: Sequence[Mapping[str, Any]]) -> QueryContext:
        """Context from per-query metadata dicts with optional 'harpnum' and 't_rec' keys."""
        return cls(
            harpnum=[int(m.get("harpnum") or 0) for m in metadata],
            t_rec=[to_datetime64(m.get("t_rec")) for m in metadata],
            row=np.full(len(metadata), -1, np.int64),
        )


def row_mask(filters: Filters, column: Callable[[str], np.ndarray], num_rows: int) -> np.ndarray | None:
    """The query-independent filters as a boolean mask over the table's first ``num_rows`` rows.

    Args:
      filters: the filters.
      column: ``column(name) -> array [>= num_rows]`` giving a table column ('harpnum', 't_rec',
        'lat_deg', 'mu', quantity names).
      num_rows: number of rows the index covers.

    Returns:
      bool [num_rows], or None when no query-independent filter is set (every row allowed).
    """
    if not filters.has_row_filters:
        return None
    allowed = np.ones(num_rows, dtype=bool)
    if filters.t_rec_range is not None:
        t_rec = column("t_rec")[:num_rows]
        start, end = filters.t_rec_range
        allowed &= ~np.isnat(t_rec)
        if not np.isnat(start):
            allowed &= t_rec >= start
        if not np.isnat(end):
            allowed &= t_rec <= end
    if filters.harp_include is not None or filters.harp_exclude:
        harpnum = column("harpnum")[:num_rows]
        if filters.harp_include is not None:
            allowed &= np.isin(harpnum, filters.harp_include) & (harpnum > 0)
        if filters.harp_exclude:
            allowed &= ~np.isin(harpnum, filters.harp_exclude)
    if filters.hemisphere is not None or filters.lat_range is not None:
        lat = column("lat_deg")[:num_rows]
        if filters.hemisphere == "north":
            allowed &= lat > 0
        elif filters.hemisphere == "south":
            allowed &= lat < 0
        if filters.lat_range is not None:
            allowed &= (lat >= filters.lat_range[0]) & (lat <= filters.lat_range[1])
    if filters.mu_range is not None:
        mu = column("mu")[:num_rows]
        allowed &= (mu >= filters.mu_range[0]) & (mu <= filters.mu_range[1])
    if filters.pa_range is not None:
        start, end = filters.pa_range
        span = end - start if end >= start else end + 360.0 - start
        cpa = column("cpa_deg")[:num_rows]
        with np.errstate(invalid="ignore"):
            allowed &= np.isfinite(cpa) & ((cpa - start) % 360.0 <= span)
    for name, (low, high) in filters.quantity_ranges.items():
        values = column(name)[:num_rows]
        allowed &= (values >= low) & (values <= high)
    return allowed


def has_query_filters(filters: Filters, context: QueryContext) -> bool:
    """Whether `query_mask` can remove anything for these queries."""
    own_harp = filters.exclude_own_harp_days is not None and bool(np.any(context.harpnum > 0))
    own_row = filters.exclude_self and bool(np.any(context.row >= 0))
    return own_harp or own_row


def query_mask(
    filters: Filters,
    context: QueryContext,
    rows: np.ndarray,
    harpnum: np.ndarray,
    t_rec: np.ndarray,
) -> np.ndarray:
    """The query-dependent filters over candidate rows.

    Args:
      filters: the filters.
      context: the Q queries' context.
      rows: int64 [C] row numbers shared by all queries, or [Q, C] per query.
      harpnum: int64, the HARP numbers of ``rows`` (same shape).
      t_rec: datetime64[s], the T_REC of ``rows`` (same shape).

    Returns:
      bool [Q, C]: True where query q may return row c.
    """
    rows, harpnum, t_rec = (
        np.asarray(a) if np.ndim(a) == 2 else np.asarray(a)[None, :] for a in (rows, harpnum, t_rec)
    )
    allowed = np.ones((len(context), rows.shape[1]), dtype=bool)
    if filters.exclude_self:
        allowed &= context.row[:, None] != rows
    if filters.exclude_own_harp_days is not None:
        same_harp = (context.harpnum[:, None] == harpnum) & (context.harpnum[:, None] > 0)
        time_apart = t_rec - context.t_rec[:, None]
        window = np.timedelta64(round(filters.exclude_own_harp_days * SECONDS_PER_DAY), "s")
        # An unknown time on either side (NaT difference) counts as "within the window".
        near = np.isnat(time_apart) | (np.abs(time_apart) <= window)
        allowed &= ~(same_harp & near)
    return allowed


def group_ids(rows: np.ndarray, harpnum: np.ndarray) -> np.ndarray:
    """Group of each row for "one result per HARP": its HARP, or -(row + 1) when it has none.

    Args:
      rows: int64 [C] row numbers; harpnum: int64 [C] their HARP numbers.

    Returns:
      int64 [C]; rows share a group exactly when they share a HARP.
    """
    return np.where(harpnum > 0, harpnum, -(rows + 1)).astype(np.int64)

"""The API's request bodies (pydantic models), each checked against what the app serves."""

import math
from typing import Literal

import fastapi
from pydantic import BaseModel, Field

from solarjax.app.artefacts import CME_STEERABLE, STEERABLE
from solarjax.app.generation import ALPHA_LIMIT, STEERING_METHODS
from solarjax.app.search import MAX_K
from solarjax.app.state import Dataset
from solarjax.retrieval import Filters


class SliderState(BaseModel):
    """A generated query: base latent seed, alpha per steerable quantity, held quantities."""

    seed: int = Field(0, ge=0, le=2**31 - 1)
    sliders: dict[Literal[STEERABLE], float] = Field(default_factory=dict)
    hold: list[Literal[STEERABLE]] = Field(default_factory=list)
    method: Literal[STEERING_METHODS] | None = None  # steering family; None: the app's default

    def checked(self, steering_methods: tuple[str, ...]):
        """The state, after checking the slider range and that `steering_methods` (the served directions')
        hold its method; else 422."""
        _check_sliders(self.sliders)
        if self.method is not None and self.method not in steering_methods:
            raise fastapi.HTTPException(
                422,
                f"steering method {self.method} is not available for these "
                f"directions; use one of {', '.join(steering_methods)}",
            )
        return self


def _check_sliders(sliders: dict[str, float]) -> None:
    """422 naming the first slider outside [-ALPHA_LIMIT, ALPHA_LIMIT] (or not finite)."""
    for name, alpha in sliders.items():
        if not (math.isfinite(alpha) and abs(alpha) <= ALPHA_LIMIT):
            raise fastapi.HTTPException(422, f"slider {name} = {alpha} is outside [-{ALPHA_LIMIT}, {ALPHA_LIMIT}]")


def _time_range(start: str | None, end: str | None):
    return (start or None, end or None) if (start or end) else None


def _filters(**fields) -> Filters:
    try:
        return Filters(**fields)
    except ValueError as error:
        raise fastapi.HTTPException(422, f"bad filter: {error}") from error


class FilterSpec(BaseModel):
    """Search filters; times are ISO 8601 (UTC) or JSOC T_REC."""

    k: int = Field(10, ge=1, le=MAX_K)
    t_start: str | None = None
    t_end: str | None = None
    hemisphere: Literal["north", "south"] | None = None
    exclude_same_harp: bool = False
    one_per_harp: bool = False
    rank: Literal["ssl", "hybrid", "physics"] | None = None  # None: the default chosen on validation

    def to_filters(self, query_harpnum: int = 0) -> Filters:
        return _filters(
            t_rec_range=_time_range(self.t_start, self.t_end),
            hemisphere=self.hemisphere,
            one_per_harp=self.one_per_harp,
            harp_exclude=(query_harpnum,) if self.exclude_same_harp and query_harpnum > 0 else (),
        )


class AiaFilterSpec(BaseModel):
    """AIA search filters: observation time (ISO 8601 UTC) and mu of the patch centre."""

    k: int = Field(10, ge=1, le=MAX_K)
    t_start: str | None = None
    t_end: str | None = None
    mu_min: float | None = Field(None, ge=0.0, le=1.0)
    mu_max: float | None = Field(None, ge=0.0, le=1.0)

    def to_filters(self) -> Filters:
        mu = (self.mu_min, self.mu_max) if (self.mu_min is not None or self.mu_max is not None) else None
        return _filters(t_rec_range=_time_range(self.t_start, self.t_end), mu_range=mu)


class GeneratedSearch(SliderState):
    filters: FilterSpec = Field(default_factory=FilterSpec)


class RowSearch(BaseModel):
    """A table row as query: its row number, or its HARP and T_REC (ISO or JSOC form)."""

    row: int | None = None
    harpnum: int | None = None
    t_rec: str | None = None
    filters: FilterSpec = Field(default_factory=FilterSpec)

    def resolved(self, sharp: Dataset) -> int:
        """The row in the SHARP table; 404 when absent, 422 when not given or a bad T_REC."""
        if self.row is not None:
            return sharp.checked_row(self.row)
        if self.harpnum is None or not self.t_rec:
            raise fastapi.HTTPException(422, "give a row, or a harpnum and a t_rec")
        try:
            return sharp.served().row_of(self.harpnum, self.t_rec)
        except ValueError as error:
            raise fastapi.HTTPException(422, f"bad t_rec: {error}") from error


class AiaRowSearch(BaseModel):
    """An AIA table row as query: its row number or its patch id."""

    row: int | None = None
    id: str | None = None
    filters: AiaFilterSpec = Field(default_factory=AiaFilterSpec)

    def resolved(self, table: Dataset) -> int:
        """The row in the table (AIA or CME); 404 when absent, 422 when not given."""
        if self.row is not None:
            return table.checked_row(self.row)
        if not self.id:
            raise fastapi.HTTPException(422, "give a row or an id")
        return table.served().row_of_id(self.id)


class CmeSliderState(BaseModel):
    """A generated CME: base latent seed, local path length alpha per steerable quantity, held quantities."""

    seed: int = Field(0, ge=0, le=2**31 - 1)
    sliders: dict[Literal[CME_STEERABLE], float] = Field(default_factory=dict)
    hold: list[Literal[CME_STEERABLE]] = Field(default_factory=list)

    def checked(self):
        """The state, after checking the slider range; else 422."""
        _check_sliders(self.sliders)
        return self


class CmeFilterSpec(BaseModel):
    """CME search filters: observation time (ISO 8601 UTC), an arc of central position angle (deg, from
    ``pa_start`` counterclockwise to ``pa_end``; both or neither) and the ranking mode."""

    k: int = Field(10, ge=1, le=MAX_K)
    t_start: str | None = None
    t_end: str | None = None
    pa_start: float | None = Field(None, ge=0, lt=360)
    pa_end: float | None = Field(None, ge=0, le=360)
    rank: Literal["ssl", "hybrid", "physics"] | None = None  # None: the served ranking's default

    def to_filters(self) -> Filters:
        if (self.pa_start is None) != (self.pa_end is None):
            raise fastapi.HTTPException(422, "bad filter: a position-angle arc needs both pa_start and pa_end")
        pa_range = None if self.pa_start is None else (self.pa_start, self.pa_end)
        return _filters(t_rec_range=_time_range(self.t_start, self.t_end), pa_range=pa_range)

    def checked_rank(self, ranks: tuple[str, ...], default: str) -> str:
        """The rank to search with: the requested one if the served ranking has it (else 422), or ``default``."""
        if self.rank is not None and self.rank not in ranks:
            raise fastapi.HTTPException(
                422,
                f"rank {self.rank} needs the CME ranking (index/built/ranking.json); this index ranks by "
                f"{', '.join(ranks)}",
            )
        return self.rank or default


class CmeGeneratedSearch(CmeSliderState):
    filters: CmeFilterSpec = Field(default_factory=CmeFilterSpec)


class CmeRowSearch(AiaRowSearch):
    """A CME table row as query: its row number or its patch id (`resolved` as an AIA row)."""

    filters: CmeFilterSpec = Field(default_factory=CmeFilterSpec)


def parsed_filters(model: type[BaseModel], text: str) -> BaseModel:
    """A form field's JSON filters as `model`; else 422."""
    try:
        return model.model_validate_json(text)
    except ValueError as error:
        raise fastapi.HTTPException(422, f"bad filters: {error}") from error

"""The SHARP search engine: the GAN steered by physics (slider states -> patches), generated queries kept
for the search that follows, and table rows found by HARP and T_REC."""

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from solarjax import physics
from solarjax.app import units
from solarjax.app.artefacts import STEERABLE, Artefacts
from solarjax.app.caches import LruCache
from solarjax.app.search import IndexSearch, NotFound, finite_or_none
from solarjax.app.timing import StageTimer
from solarjax.units import GAUSS_PER_UNIT

ALPHA_LIMIT = 3.0
"""Slider range: alpha in [-ALPHA_LIMIT, ALPHA_LIMIT] units of the (unit) direction, or of local path length."""

STEERING_METHODS = ("paper", "piecewise", "local")
"""Steering families (`solarjax.steering.families`); the sliders default to the best by the demo's evaluation."""

LOCAL_PROGRAM_STEPS = 6
"""Steps of the app's one compiled local-path program, enough for |alpha| = `ALPHA_LIMIT` at the evaluated step
length (`solarjax.steering.local.DEFAULT_STEP`); a slider's path moves `local_step_count` of them and the rest
cost nothing (`path_program`'s ``active_steps``)."""


def local_step_count(alpha: float) -> int:
    """Steps of a slider's local path of length |alpha|: the evaluation's (`solarjax.steering.local.path_steps`,
    equal steps at most `DEFAULT_STEP` long), at most `LOCAL_PROGRAM_STEPS`."""
    from solarjax.steering import local

    return min(local.path_steps(alpha), LOCAL_PROGRAM_STEPS)


GENERATED_CACHE_SIZE = 256
"""Generated queries (patch, embedding, quantities) kept by slider state: the page generates a patch as the
sliders move, and the search of that patch reuses it instead of steering the generator again."""


@dataclasses.dataclass(frozen=True)
class GeneratedQuery:
    """A generated query: patch [1, 128, 128, 1], embedding [1, D] and exact quantities name -> [1] float64
    (``names``: those a response lists, SHARP's by default)."""

    image: np.ndarray
    embedding: np.ndarray
    values: dict[str, np.ndarray]
    names: tuple[str, ...] = physics.QUANTITY_NAMES

    def quantities(self) -> dict[str, float | None]:
        """The quantities JSON-ready (NaN -> None)."""
        return {name: finite_or_none(self.values[name][0]) for name in self.names}


class SearchEngine(IndexSearch):
    """Steering, generation, embedding and search of the SHARP artefacts."""

    def __init__(self, artefacts: Artefacts):
        super().__init__(artefacts.encoder, artefacts.index, artefacts.tfds_dir)
        self.artefacts = artefacts
        self.generated_cache = LruCache(GENERATED_CACHE_SIZE)
        self._directions = {
            hold: {name: np.asarray(artefacts.directions.direction(name, hold=hold), np.float32) for name in STEERABLE}
            for size in range(len(STEERABLE) + 1)
            for hold in itertools.combinations(STEERABLE, size)
        }
        self._harpnum = self.index.table.column("harpnum")
        self._t_rec = self.index.table.column("t_rec")
        self.steering_methods = tuple(
            m for m in STEERING_METHODS if m != "piecewise" or artefacts.directions.has_piecewise
        )
        best = (artefacts.steering_report or {}).get("best_method")
        # without an evaluation report: local, the family the steering evaluation ranks best on every GAN seed
        self.steering_method = best if best in self.steering_methods else "local"

    # -- steering --------------------------------------------------------------------------
    def steered_latent(
        self, seed: int, sliders: Mapping[str, float], hold: Sequence[str], method: str | None = None
    ) -> np.ndarray:
        """z [1, D]: the seed's latent moved by alpha for each free quantity, holding the held ones.

        'paper' and 'piecewise' add alpha times each quantity's conditional direction (the global one, or
        that of the base latent's half-space) and rescale to the base latent's norm; 'local' follows
        each slider's local path of length |alpha| in turn (on the shell). ``method`` None: the default.
        """
        from solarjax.steering import edit

        method = method or self.steering_method
        if method not in self.steering_methods:
            raise ValueError(
                f"steering method {method!r} is not available; these are: {', '.join(self.steering_methods)}"
            )
        held = tuple(name for name in STEERABLE if name in hold)
        z = self.artefacts.generator.sample_latents(1, seed)
        free = [(name, float(alpha)) for name, alpha in sliders.items() if name not in held and float(alpha) != 0.0]
        if method == "local":
            return self._local_latent(z, free, held)
        if method == "paper":
            directions = self._directions[held]
            step = sum(alpha * directions[name] for name, alpha in free)
        else:
            step = sum(alpha * self.artefacts.directions.piecewise_direction(name, z, held)[0] for name, alpha in free)
        step = np.zeros(z.shape[1], np.float32) + step
        return np.asarray(edit(z, step.astype(np.float32), np.ones(1, np.float32), keep_norm=True))[:, 0]

    def _local_latent(self, z: np.ndarray, free: Sequence[tuple[str, float]], held: Sequence[str]) -> np.ndarray:
        """z [1, D] moved along each free slider's local path in turn (`solarjax.steering.local.path_program`)."""
        import jax.numpy as jnp

        from solarjax.steering import local

        generator = self.artefacts.generator
        mask = jnp.asarray([float(name in held) for name in STEERABLE], jnp.float32)
        z = np.asarray(z, np.float32)
        for name, alpha in free:
            weights = jnp.asarray([float(n == name) for n in STEERABLE], jnp.float32)
            steps = local_step_count(alpha)
            path, _ = local.path_program(
                generator.apply_fn,
                generator.params,
                z,
                jnp.float32(alpha / steps),
                weights,
                mask,
                names=STEERABLE,
                steps=LOCAL_PROGRAM_STEPS,
                active_steps=jnp.int32(steps),
            )
            # back on the host: the path's output is placed on the generator's mesh, and a placed z0 would be
            # another compiled program than the warmed one
            z = np.asarray(path[:, -1])
        return z

    def generate(
        self, seed: int, sliders: Mapping[str, float], hold: Sequence[str], method: str | None = None
    ) -> np.ndarray:
        """The steered patch [1, 128, 128, 1]."""
        return np.asarray(self.artefacts.generator.generate(self.steered_latent(seed, sliders, hold, method)))

    def steering_key(self, seed: int, sliders: Mapping[str, float], hold: Sequence[str], method: str | None = None):
        """What `steered_latent` depends on: seed, method, held names and the free non-zero sliders in
        request order (local paths are followed in that order)."""
        method = method or self.steering_method
        held = tuple(name for name in STEERABLE if name in hold)
        free = tuple(
            (name, float(alpha)) for name, alpha in sliders.items() if name not in held and float(alpha) != 0.0
        )
        return (int(seed), method, held, free)

    def generated(
        self,
        seed: int,
        sliders: Mapping[str, float],
        hold: Sequence[str],
        method: str | None = None,
        timer: StageTimer | None = None,
    ) -> GeneratedQuery:
        """The steered patch with its embedding and quantities, from `generated_cache` when this slider
        state was generated before (``timer`` records the stages run: steer, embed, quantities)."""
        timer = timer or StageTimer()
        key = self.steering_key(seed, sliders, hold, method)
        cached = self.generated_cache.get(key)
        if cached is not None:
            timer.mark("cache_hit", 0.0)
            return cached
        with timer.stage("steer"):
            image = self.generate(seed, sliders, hold, method)
        with timer.stage("embed"):
            embedding = self.embed(image)
        with timer.stage("quantities"):
            values = {name: np.asarray(v, np.float64) for name, v in physics.quantities(image).items()}
        query = GeneratedQuery(image, embedding, values)
        self.generated_cache.put(key, query)
        return query

    def quantities(self, images: np.ndarray) -> list[dict[str, float | None]]:
        """Quantities of patches [N, 128, 128, 1] as N JSON-ready dicts (NaN -> None)."""
        values = {name: np.asarray(v) for name, v in physics.quantities(images).items()}
        return [{name: finite_or_none(values[name][i]) for name in physics.QUANTITY_NAMES} for i in range(len(images))]

    def row_of(self, harpnum: int, t_rec: str) -> int:
        """The table row of a HARP at a T_REC (ISO or JSOC form)."""
        from solarjax.retrieval.filters import to_datetime64

        when = to_datetime64(t_rec)
        found = np.flatnonzero((self._harpnum == harpnum) & (self._t_rec == when))
        if not len(found):
            raise NotFound(f"no row of HARP {harpnum} at {t_rec} in the table")
        return int(found[0])

    # -- warm-up ---------------------------------------------------------------------------
    def warm(self) -> None:
        """Compiles every program a request runs, on the shapes served."""
        image = self.generate(0, {name: 0.5 for name in STEERABLE}, hold=STEERABLE[:1])
        if "local" in self.steering_methods:  # one program for every path length (`LOCAL_PROGRAM_STEPS`)
            self.generate(0, {STEERABLE[0]: 0.5}, hold=(), method="local")
        self.quantities(image)
        # an upload with a plate scale: its quantities in physical units (one patch shape whatever the map's)
        field = np.asarray(image)[0, ..., 0] * GAUSS_PER_UNIT
        units.physical_payload(field, units.PlateScale((0.36, 0.36), "warm-up"))
        self.warm_search(self.embed(image), grouped=True)
        self.warm_ranked(self.embed(image), image, grouped=True)

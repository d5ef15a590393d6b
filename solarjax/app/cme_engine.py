"""The CME search engine: the CME GAN steered by the local family (`solarjax.cme_steering.local_traversals`),
generated queries kept for the search that follows, their measured quantities (`solarjax.cme_physics`) and
the search of the `cme_patches` table (SSL, or the demo's ranking when it ranks by CME quantities)."""

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from solarjax import cme_physics
from solarjax.app.artefacts import CME_STEERABLE, CmeArtefacts
from solarjax.app.caches import LruCache
from solarjax.app.generation import ALPHA_LIMIT, GENERATED_CACHE_SIZE, GeneratedQuery
from solarjax.app.search import IndexSearch, NotFound, finite_or_none
from solarjax.app.timing import StageTimer

CME_QUANTITIES = cme_physics.QUANTITY_NAMES
"""The measured quantities of every CME query and result."""

CME_ALPHA_LIMIT = ALPHA_LIMIT
"""Slider range: alpha in [-CME_ALPHA_LIMIT, CME_ALPHA_LIMIT] units of local path length."""


def local_path_steps(alpha: float) -> tuple[int, float]:
    """(steps, step length) of a local path of length |alpha|: steps of at most `cme_steering.LOCAL_STEP`, the
    evaluated step (longer steps stray from the width's gradient)."""
    from solarjax.cme_steering import LOCAL_STEP

    steps = max(1, math.ceil(abs(alpha) / LOCAL_STEP - 1e-6))
    return steps, abs(alpha) / steps


class CmeSearch(IndexSearch):
    """Steering, generation, embedding and search of the CME artefacts (thread-safe as `IndexSearch`)."""

    def __init__(self, artefacts: CmeArtefacts):
        from solarjax.retrieval import ranking as ranking_lib

        super().__init__(artefacts.encoder, artefacts.index, artefacts.tfds_dir)
        self.artefacts = artefacts
        self.generator = artefacts.generator
        self.ranking = artefacts.ranking or ranking_lib.Ranking()
        columns = set(self.index.table.columns)
        # the demo's ranking.json ranks by CME quantities; without it the defaults name SHARP quantities
        ranked = set(self.ranking.quantities) <= columns & set(CME_QUANTITIES)
        self.ranks = ranking_lib.RANKS if ranked else ("ssl",)
        if self.ranking.rank not in self.ranks:
            self.ranking = self.ranking.with_rank("ssl")
        self.generated_cache = LruCache(GENERATED_CACHE_SIZE)
        self._ids = self.index.table.column("id")

    # -- measured quantities ---------------------------------------------------------------
    def query_quantities(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """`cme_physics.quantities` of images [N, 128, 128, 1]: name -> float64 [N] (NaN: no CME signal)."""
        return {name: np.asarray(v, np.float64) for name, v in cme_physics.quantities(images).items()}

    def quantities(self, images: np.ndarray) -> list[dict[str, float | None]]:
        """Measured quantities of images [N, 128, 128, 1] as N JSON-ready dicts (NaN -> None)."""
        values = self.query_quantities(images)
        return [{name: finite_or_none(values[name][i]) for name in CME_QUANTITIES} for i in range(len(images))]

    # -- steering --------------------------------------------------------------------------
    def steering_key(self, seed: int, sliders: Mapping[str, float], hold: Sequence[str]):
        """What `steered_latent` depends on: seed, held names and the free non-zero sliders in request order."""
        held = tuple(name for name in CME_STEERABLE if name in hold)
        free = tuple(
            (name, float(alpha)) for name, alpha in sliders.items() if name not in held and float(alpha) != 0.0
        )
        return int(seed), held, free

    def steered_latent(self, seed: int, sliders: Mapping[str, float], hold: Sequence[str]) -> np.ndarray:
        """z [1, D]: the seed's latent moved along each free slider's local gradient path of length |alpha| in
        turn (up for alpha > 0), the held quantities' gradients projected out."""
        from solarjax.cme_steering import local_traversals

        _, held, free = self.steering_key(seed, sliders, hold)
        z = np.asarray(self.generator.sample_latents(1, seed), np.float32)
        for name, alpha in free:
            steps, step = local_path_steps(alpha)
            path, _ = local_traversals(self.generator, z, name, num_steps=steps, step=step, hold=held)
            z = path[:, -1] if alpha > 0 else path[:, 0]
        return z

    def generate(self, seed: int, sliders: Mapping[str, float], hold: Sequence[str]) -> np.ndarray:
        """The steered image [1, 128, 128, 1]."""
        return np.asarray(self.generator.generate(self.steered_latent(seed, sliders, hold)), np.float32)

    def generated(
        self, seed: int, sliders: Mapping[str, float], hold: Sequence[str], timer: StageTimer | None = None
    ) -> GeneratedQuery:
        """The steered image with its embedding and measured quantities, from `generated_cache` when this
        slider state was generated before (``timer`` records the stages run: steer, embed, quantities)."""
        timer = timer or StageTimer()
        key = self.steering_key(seed, sliders, hold)
        cached = self.generated_cache.get(key)
        if cached is not None:
            timer.mark("cache_hit", 0.0)
            return cached
        with timer.stage("steer"):
            image = self.generate(seed, sliders, hold)
        with timer.stage("embed"):
            embedding = self.embed(image)
        with timer.stage("quantities"):
            values = self.query_quantities(image)
        query = GeneratedQuery(image, embedding, values, names=CME_QUANTITIES)
        self.generated_cache.put(key, query)
        return query

    # -- table -----------------------------------------------------------------------------
    def row_of_id(self, patch_id: str) -> int:
        """The table row of a CME patch id."""
        found = np.flatnonzero(self._ids == patch_id.encode())
        if not len(found):
            raise NotFound(f"no CME with id {patch_id!r} in the table")
        return int(found[0])

    def table_summary(self) -> dict:
        """[first, last] observation time (ISO; None for synthetic CMEs) and the detectors of the table."""
        table = self.index.table
        times = table.column("t_obs")[: self.index.num_rows]
        times = times[~np.isnat(times)]
        detectors = sorted({bytes(d).decode() for d in np.unique(table.column("detector")[: self.index.num_rows])})
        iso = (
            [str(np.datetime_as_string(t, unit="s")) for t in (times.min(), times.max())]
            if len(times)
            else [None, None]
        )
        return {"t_obs": iso, "detectors": [d for d in detectors if d]}

    # -- warm-up ---------------------------------------------------------------------------
    def warm(self) -> None:
        """Compiles every program a request runs: each slider's gradient step with every set of held
        quantities (two steps each way: a path's first step, from the seed's latent, and its later steps
        compile apart), the generator, encoder, measurement and every search program."""
        from solarjax.cme_steering import local_traversals

        z = np.asarray(self.generator.sample_latents(1, 0), np.float32)
        for name in CME_STEERABLE:
            others = [n for n in CME_STEERABLE if n != name]
            for size in range(len(others) + 1):
                for held in itertools.combinations(others, size):
                    local_traversals(self.generator, z, name, num_steps=2, step=0.5, hold=held)
        image = self.generate(0, {}, ())
        embedding = self.embed(image)
        self.quantities(image)
        self.warm_search(embedding, grouped=False)
        if len(self.ranks) > 1:
            self.warm_ranked(embedding, image, grouped=False)

"""A trained generator from a run directory, and the files `solarjax sample` writes.

    from solarjax import gan
    g = gan.load('runs/gan_synthetic')                # best checkpoint (latest if none is ranked)
    z = g.sample_latents(64, seed=0)                  # [64, 100]
    images = g.generate(z)                            # [64, 128, 128, 1], s = B / 1000 G
    gan.sample_grid_png(images, 'samples.png')
    gan.write_fits_cube(images, 'samples.fits', latents=z, header=g.fits_header())

The object also has ``apply_fn(params, z)``, ``params``, ``fingerprint`` and ``latent_dim``, the
interface `solarjax.steering.as_generator` takes.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from astropy.io import fits

from solarjax import plotting, sharding
from solarjax.fingerprint import weights_fingerprint
from solarjax.models import gan as gan_models
from solarjax.train import checkpoint as checkpoint_lib
from solarjax.train import gan as gan_train
from solarjax.units import GAUSS_PER_UNIT


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedGenerator:
    """A generator restored from a checkpoint.

    Attributes:
      apply_fn: pure ``(params, z [N, latent_dim]) -> images [N, 128, 128, 1]`` in [-1, 1].
      params: the generator's parameters.
      fingerprint: identifies these weights: a hash of the model fingerprint, the step and the sampling
        parameters (directions, tables and indexes built on one generator refuse another).
      latent_dim: size of z.
      step: the train step of the checkpoint.
      config: the run config (plain dict).
      workdir: the run directory.
    """

    apply_fn: Callable[[Any, jax.Array], jax.Array]
    params: Any
    fingerprint: str
    latent_dim: int
    step: int
    config: dict
    workdir: str

    def generate(self, z) -> jax.Array:
        """Patches [N, 128, 128, 1] (s = B / 1000 G) of latents z [N, latent_dim] (jitted)."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latents must have shape [N, {self.latent_dim}], got {z.shape}")
        return gan_models.apply_generator(self.apply_fn, self.params, z)

    def sample_latents(self, count: int, seed: int = 0) -> np.ndarray:
        """z ~ N(0, I), [count, latent_dim] float32, from ``jax.random.key(seed)``."""
        return gan_models.sample_latents(count, self.latent_dim, seed)

    def fits_header(self) -> dict[str, Any]:
        """Provenance cards for `write_fits_cube`."""
        return {
            "GANFP": (self.fingerprint, "solarjax GAN fingerprint (weights)"),
            "GANSTEP": (self.step, "train step of the checkpoint"),
            "GANARCH": (self.config["model"]["arch"], "GAN architecture"),
        }


def _select_step(checkpoints: checkpoint_lib.RunCheckpoints, step: int | str) -> int:
    if step == "best":
        chosen = checkpoints.best_step()
    elif step == "latest":
        chosen = checkpoints.latest_step()
    elif isinstance(step, int) and step in checkpoints.all_steps():
        chosen = step
    else:
        raise ValueError(
            f"step must be 'best', 'latest' or one of the saved steps "
            f"{checkpoints.all_steps()} in {checkpoints.directory}, got {step!r}"
        )
    return chosen


def _ranked_checkpoints(directory: pathlib.Path, fingerprint: str | None) -> checkpoint_lib.RunCheckpoints:
    """The run's checkpoints, 'best' ranked by the figure its training ranked them by (the run config's
    ``quality.best_metric``; 'frechet' for runs without one), not the reader's default."""
    checkpoints = checkpoint_lib.RunCheckpoints(directory, fingerprint=fingerprint)
    try:
        latest = checkpoints.latest_step()
        config = checkpoints.run_info(latest)["config"] if latest is not None else {}
    except Exception:  # an unreadable record is reported by the caller's own reads
        config = {}
    metric = (config.get("quality") or {}).get("best_metric", checkpoints.best_metric)
    if metric == checkpoints.best_metric:
        return checkpoints
    checkpoints.close()
    return checkpoint_lib.RunCheckpoints(directory, fingerprint=fingerprint, best_metric=metric)


def load(workdir: str | os.PathLike, step: int | str = "best", fingerprint: str | None = None) -> TrainedGenerator:
    """The generator of a GAN run directory.

    Args:
      workdir: the run's work directory (with ``checkpoints/``).
      step: 'best' (the best-ranked checkpoint, or the latest when none was ranked), 'latest',
        or a saved step number.
      fingerprint: if given, the checkpoint must have this model fingerprint.

    Raises:
      FileNotFoundError: no checkpoints in `workdir`.
      FingerprintMismatchError: the checkpoint's fingerprint is not `fingerprint`.
      ArtefactKindError: `workdir` holds another model (a SimSiam encoder, say).
      CheckpointReadError: the checkpoint does not read (for 'best' and 'latest', an unreadable one is
        skipped with a warning and the newest older one that reads is used).
    """
    directory = pathlib.Path(workdir) / "checkpoints"
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no GAN checkpoints in {directory}: train first "
            f"(solarjax train gan --config ... --workdir {workdir})" + checkpoint_lib.missing_run_hint(workdir, "gan")
        )
    checkpoints = _ranked_checkpoints(directory, fingerprint)
    try:
        checkpoints.require_kind("gan", workdir, "solarjax train gan")
        chosen = _select_step(checkpoints, step)
        config = ml_collections.ConfigDict(checkpoints.run_info(chosen)["config"])
        mesh = sharding.make_data_mesh()
        programs = gan_train.programs_for(config, mesh)
        template = jax.eval_shape(programs.init, jax.random.key(0))
        template = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding.replicated(mesh)), template
        )
        chosen, state = checkpoints.read_state(chosen, template, fallback=step in ("best", "latest"))
    finally:
        checkpoints.close()
    params = gan_train.sampling_params(state)
    return TrainedGenerator(
        apply_fn=gan_models.GeneratorApply(programs.generator),
        params=params,
        fingerprint=weights_fingerprint(checkpoints.fingerprint, f"step {chosen}", weights=params),
        latent_dim=int(config.model.latent_dim),
        step=chosen,
        config=config.to_dict(),
        workdir=os.fspath(workdir),
    )


def sample_grid_png(
    images, path: str | os.PathLike, columns: int | None = None, title: str | None = None
) -> pathlib.Path:
    """A PNG grid of patches [N, 128, 128, 1] with the hmimag colour map on [-1000, 1000] G."""
    return plotting.save_sample_grid(np.asarray(images), path, columns=columns, title=title)


def patch_grid_wcs(width: int, height: int):
    """The WCS of a cube [N, height, width] of patches without a plate scale (`astropy.wcs.WCS`, 3 axes).

    Axis 1 (columns) and axis 2 (rows): PATCHX / PATCHY, the position in the patch as a fraction of its
    width / height, 0 at the outer edge of the first pixel and 1 at the far edge of the last; axis 3:
    SAMPLE, the 0-based index of the patch in the cube.
    """
    from astropy.wcs import WCS

    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["PATCHX", "PATCHY", "SAMPLE"]
    wcs.wcs.crpix = [0.5, 0.5, 1.0]
    wcs.wcs.crval = [0.0, 0.0, 0.0]
    wcs.wcs.cdelt = [1.0 / width, 1.0 / height, 1.0]
    wcs.wcs.cname = ["fraction of the patch width", "fraction of the patch height", "sample index"]
    return wcs


def _package_version() -> str:
    import solarjax

    return solarjax.__version__


def write_fits_cube(
    images, path: str | os.PathLike, latents=None, header: Mapping[str, Any] | None = None
) -> pathlib.Path:
    """Writes patches as a FITS cube of Br in gauss.

    Args:
      images: [N, H, W] or [N, H, W, 1], s = B / 1000 G.
      path: the .fits file (overwritten).
      latents: optional [N, D] latents, stored as the 'LATENTS' image extension.
      header: extra primary-header cards, ``{key: value}`` or ``{key: (value, comment)}``.

    Returns:
      The path. Primary HDU: float32 [N, H, W] = 1000 * s, BUNIT 'G', a minimal WCS (`patch_grid_wcs`:
      axes 1-2 the position in the patch as a fraction of its width and height, axis 3 the sample
      index) and provenance cards (ORIGIN, CREATOR with the solarjax version, DATE in UTC).
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"expected images [N, H, W] or [N, H, W, 1], got shape {images.shape}")
    primary = fits.PrimaryHDU(images * np.float32(GAUSS_PER_UNIT))
    primary.header["BUNIT"] = ("G", "radial field Br")
    primary.header["CONTENT"] = ("generated SHARP-like Br patches", "solarjax GAN samples")
    primary.header["BTYPE"] = ("Br", "radial component of the photospheric field")
    primary.header.update(patch_grid_wcs(images.shape[2], images.shape[1]).to_header())
    primary.header["COMMENT"] = (
        "WCS: patch grid only; the plate scale of a generated patch is unknown (training "
        "patches were resized to 128x128 without keeping the aspect ratio)"
    )
    primary.header["ORIGIN"] = ("solarjax", "institution or software that wrote the file")
    primary.header["CREATOR"] = (f"solarjax {_package_version()}", "software that wrote the file")
    primary.header["DATE"] = (datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "file written, UTC")
    for key, card in (header or {}).items():
        primary.header[key] = card
    hdus = [primary]
    if latents is not None:
        latents = np.asarray(latents, np.float32)
        if latents.ndim != 2 or latents.shape[0] != images.shape[0]:
            raise ValueError(f"latents must be [N={images.shape[0]}, D], got shape {latents.shape}")
        hdus.append(fits.ImageHDU(latents, name="LATENTS"))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path

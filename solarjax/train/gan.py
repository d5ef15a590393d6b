"""GAN training: a pure, sharded train step, plugged into the shared loop (`solarjax.train.loop.run`).

    from solarjax import configs
    state = train_and_evaluate(configs.load('gan:synthetic'), workdir='runs/gan')

The step follows the paper: per batch, latents z ~ N(0, I) are drawn once; the generator takes one
Adam step on the non-saturating loss -log D(G(z)); the discriminator takes one Adam step on
-log D(x) - log(1 - D(G(z))) with the same fake batch G(z) (made with the generator's parameters
from before its update, as the PyTorch original's ``fake.detach()``). Losses are
`optax.sigmoid_binary_cross_entropy` on logits, averaged over the batch; the discriminator's loss
is the sum of its real and fake terms. Options beyond the paper (``config.model``): ``loss='hinge'``
(`adversarial_losses`) and ``ema_decay > 0``, an exponential moving average of the generator's weights
kept in the state and the checkpoints, which sample grids, quality figures and `solarjax.gan.load` use.
``<term>_weight`` (`MATCHING_TERMS`; ``<term>_start`` steps off, then ramped in: `matching_starts`) adds to the
generator's loss the mismatch between its batch and the real batch of the band sharpness (`sharpness_mismatch`), the
Schrijver R (`complexity_mismatch`) and its distribution (`complexity_spread_mismatch`), the quiet-Sun width
(`quiet_mismatch`), the distribution of the net flux (`balance_mismatch`), the weak and quiet field's coherence
(`plage_mismatch`, `coherence_mismatch`), the per-patch gradient (`gradient_mismatch`), the bipole's polarity
separation and leading-polarity offset (`bipole_mismatch`), the umbra strength (`umbra_mismatch`), the strong
field's extent (`spot_mismatch`) and its pieces' sizes (`spot_size_mismatch`,
`round_spot_size_mismatch`), the border excess (`border_mismatch`), the pixel-grid phases (`grid_mismatch`),
the power in wavenumber bands (`spectrum_mismatch`), that power in the field above the noise
(`signal_spectrum_mismatch`), its orientation at small scales (`isotropy_mismatch`) or the small-scale power along
the axes and the diagonals (`sector_mismatch`). ``matched_sharpness`` sets the masks of the quantities the R,
bipole and balance terms read (`matched_quantities`).
Quality figures (`solarjax.train.quality.quality_figures`: physics KS, Frechet, realism diagnostics and
``realism_score``) are logged as ``quality/...``; ``config.quality.best_metric`` ranks checkpoints.

Determinism: step t draws its latents from ``fold_in(state.rng, t)``, the data iterator's position is
checkpointed with the state, so a run that is killed and restarted from its work directory reaches
the same parameters as one that was never interrupted.

Work directory: ``config.json``, ``metrics.jsonl``, ``samples/step_XXXXXXX.png``, ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding

from solarjax import physics, sharding, units
from solarjax.models import gan as gan_models
from solarjax.models import precision
from solarjax.train import checkpoint as checkpoint_lib
from solarjax.train import loop, monitor
from solarjax.train import quality as quality_lib
from solarjax.train.loop import step_key as step_key  # the key of a state's next step

IMAGE_SHAPE = (gan_models.IMAGE_SIZE, gan_models.IMAGE_SIZE, 1)


@struct.dataclass
class GanState:
    """Everything a GAN run carries from step to step (a pytree).

    Attributes:
      step: int32 [], number of train steps taken.
      g_params, d_params: generator and discriminator parameters.
      d_stats: the discriminator's 'batch_stats' collection (spectral-norm power-iteration
        vectors); an empty dict for architectures without it.
      g_opt_state, d_opt_state: optax states.
      rng: the run's base PRNG key; step t uses ``fold_in(rng, t)`` (see `step_key`).
      g_ema_params: exponential moving average of the generator's parameters (``model.ema_decay``
        > 0), the parameters samples are drawn with; None without EMA (and in checkpoints written
        before EMA existed).
    """

    step: jax.Array
    g_params: Any
    d_params: Any
    d_stats: Any
    g_opt_state: Any
    d_opt_state: Any
    rng: jax.Array
    g_ema_params: Any = None


LOSSES = ("non_saturating", "hinge")


def sampling_params(state: GanState) -> Any:
    """The generator parameters to sample with: the EMA when the run keeps one, else the trained ones."""
    return state.g_params if state.g_ema_params is None else state.g_ema_params


def ema_update(average: Any, params: Any, decay: float) -> Any:
    """One step of an exponential moving average: ``decay * average + (1 - decay) * params`` per leaf."""
    return jax.tree.map(lambda a, p: decay * a + (1.0 - decay) * p, average, params)


def adversarial_losses(loss: str) -> tuple[Callable, Callable]:
    """``(generator_loss(fake_logits), discriminator_loss(real_logits, fake_logits))``, batch means.

    'non_saturating' (the paper): -log D(G(z)) and -log D(x) - log(1 - D(G(z))) on sigmoid logits.
    'hinge' (Lim & Ye 2017; Miyato et al. 2018): -D(G(z)) and relu(1 - D(x)) + relu(1 + D(G(z))).
    """
    if loss == "non_saturating":

        def generator_loss(fake):
            return jnp.mean(optax.sigmoid_binary_cross_entropy(fake, jnp.ones_like(fake)))

        def discriminator_loss(real, fake):
            return jnp.mean(optax.sigmoid_binary_cross_entropy(real, jnp.ones_like(real))) + jnp.mean(
                optax.sigmoid_binary_cross_entropy(fake, jnp.zeros_like(fake))
            )
    elif loss == "hinge":

        def generator_loss(fake):
            return -jnp.mean(fake)

        def discriminator_loss(real, fake):
            return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    else:
        raise ValueError(f"unknown GAN loss {loss!r}; choose one of {LOSSES}")
    return generator_loss, discriminator_loss


SHARPNESS_BANDS_GAUSS = ((50.0, 200.0), (200.0, 500.0), (500.0, math.inf))
"""Bands of |Br| (G) whose pixel share and mean |grad Br| `sharpness_mismatch` compares."""
SHARPNESS_SOFTNESS_GAUSS = 10.0
"""Width (G) of the logistic edges of the soft band masks (hard edges would carry no gradient)."""


def field_and_gradient(images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(Br [B, H, W] in G, |grad Br| [B, H, W] in G/px)`` of patches [B, H, W, 1] (s = Br / 1000 G); the gradient is
    `jnp.gradient`'s (central differences inside, one-sided at the borders), smoothed at 0 so it stays differentiable."""
    field = images[..., 0].astype(jnp.float32) * units.GAUSS_PER_UNIT
    rows, cols = jnp.gradient(field, axis=(1, 2))
    return field, jnp.sqrt(rows**2 + cols**2 + 1e-6)


def band_statistics(images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(pixel share [bands], mean |grad Br| [bands] in G/px)`` of a batch [B, H, W, 1] of patches
    (s = Br / 1000 G), pooled over the batch, in the bands `SHARPNESS_BANDS_GAUSS` with soft edges;
    the gradient is `jnp.gradient`'s (central differences inside, one-sided at the borders)."""
    field, gradient = field_and_gradient(images)
    strength = jnp.abs(field)
    shares, gradients = [], []
    for low, high in SHARPNESS_BANDS_GAUSS:
        inside = jax.nn.sigmoid((strength - low) / SHARPNESS_SOFTNESS_GAUSS)
        if math.isfinite(high):
            inside = inside * jax.nn.sigmoid((high - strength) / SHARPNESS_SOFTNESS_GAUSS)
        shares.append(jnp.mean(inside))
        gradients.append(jnp.sum(inside * gradient) / (jnp.sum(inside) + 1.0))
    return jnp.stack(shares), jnp.stack(gradients)


def sharpness_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Sum over the bands of the squared log ratios, fake over real, of the pixel share and of the mean
    gradient (`band_statistics`); 0 when the batches agree. Shares floor at 1e-4, gradients at 1 G/px."""
    fake_share, fake_gradient = band_statistics(fake)
    real_share, real_gradient = jax.lax.stop_gradient(band_statistics(real))
    share_term = jnp.log((fake_share + 1e-4) / (real_share + 1e-4)) ** 2
    gradient_term = jnp.log((fake_gradient + 1.0) / (real_gradient + 1.0)) ** 2
    return jnp.sum(share_term + gradient_term)


def matched_quantities(images: jax.Array, sharpness: float | None = None) -> dict[str, jax.Array]:
    """name -> float32 [B]: the smooth quantities of a batch [B, H, W, 1] (s = Br / 1000 G;
    `solarjax.physics.smooth_quantities`, its logistic masks ``sharpness`` per unit of s: None for its default)
    that the R, bipole and balance terms read (`QUANTITY_TERMS`), with ``separation_px``: ``psep`` (a share of the
    patch diagonal) in pixels. The train step computes them once per batch for all those terms."""
    sharp = {} if sharpness is None else {"sharpness": float(sharpness)}
    values = dict(physics.smooth_quantities(images.astype(jnp.float32), **sharp))
    values["separation_px"] = values["psep"] * math.hypot(images.shape[1], images.shape[2])
    return values


def complexity_from_quantities(fake: Mapping[str, jax.Array], real: Mapping[str, jax.Array]) -> jax.Array:
    """`complexity_mismatch` of two batches' `matched_quantities`."""
    fake_r = jnp.mean(fake["r_value"])
    real_r = jax.lax.stop_gradient(jnp.mean(real["r_value"]))
    return jnp.log((fake_r + 1e-3) / (real_r + 1e-3)) ** 2


def complexity_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared log ratio, fake over real, of the batch-mean smooth Schrijver R (`solarjax.physics.smooth_quantities`:
    the flux along strong-field polarity inversion lines); 0 when the batches agree. Means floor at 1e-3. Float32."""
    return complexity_from_quantities(matched_quantities(fake), matched_quantities(real))


def complexity_spread_from_quantities(fake: Mapping[str, jax.Array], real: Mapping[str, jax.Array]) -> jax.Array:
    """`complexity_spread_mismatch` of two batches' `matched_quantities`."""
    return sorted_w2(jnp.log1p(fake["r_value"]), jnp.log1p(real["r_value"]))


def complexity_spread_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance (`sorted_w2`) between the batches' distributions of log(1 + R), R the
    smooth Schrijver R of each patch (`solarjax.physics.smooth_quantities`, normalised field times pixels): the
    share of patches without a strong-field polarity inversion line and the complex patches' tail as in the data,
    not only the batch mean (`complexity_mismatch`); 0 when the batches agree (batches of one size). Inputs
    [B, H, W, 1], s = Br / 1000 G; float32."""
    return complexity_spread_from_quantities(matched_quantities(fake), matched_quantities(real))


QUIET_SOFTNESS_GAUSS = gan_models.QUIET_SOFTNESS * units.GAUSS_PER_UNIT
"""Width (G) of the logistic edge of the soft quiet-pixel masks (hard cut: `quality.QUIET_LEVEL_GAUSS`)."""


def quiet_widths(images: jax.Array) -> jax.Array:
    """[B] width (G) of the quiet pixels (|Br| below `quality.QUIET_LEVEL_GAUSS`, soft edge of 5 G) of each patch
    of a batch [B, H, W, 1] (s = Br / 1000 G): the mask-weighted standard deviation about the weighted mean
    (`models.gan.quiet_variance`), the differentiable counterpart of `quality.noise_width`."""
    variance = gan_models.quiet_variance(images[..., 0].astype(jnp.float32))
    return units.GAUSS_PER_UNIT * jnp.sqrt(variance + 1e-12)


def quiet_width(images: jax.Array) -> jax.Array:
    """Batch-mean `quiet_widths` (G) of a batch [B, H, W, 1]."""
    return jnp.mean(quiet_widths(images))


def quiet_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared log ratio, fake over real, of the quiet-pixel width (`quiet_width`): the instrument noise plus the
    weak field together measure like the data's quiet Sun; 0 when the batches agree. Widths floor at 1 G."""
    return jnp.log((quiet_width(fake) + 1.0) / (jax.lax.stop_gradient(quiet_width(real)) + 1.0)) ** 2


def quiet_spread_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance (`sorted_w2`) between the batches' distributions of the log per-patch
    quiet width (`quiet_widths`, floored at 1 G): the quiet Sun is as wide in each patch as in the data's, not only
    on average; 0 when the batches agree."""
    return sorted_w2(jnp.log(quiet_widths(fake) + 1.0), jnp.log(quiet_widths(real) + 1.0))


def sorted_w2(fake_values: jax.Array, real_values: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between two samples of one size, column by column, averaged: the values
    [B, ...] sorted along the batch axis and compared rank by rank, mean((sort(fake) - sort(real))^2); 0 when the
    samples agree. The real side is a target: no gradient reaches it. The core of the `*_mismatch` terms that
    match a per-patch value's distribution."""
    fake_sorted = jnp.sort(fake_values, axis=0)
    return jnp.mean((fake_sorted - jax.lax.stop_gradient(jnp.sort(real_values, axis=0))) ** 2)


BALANCE_SCALE = 100.0
"""Net flux (normalised field times pixels: 100 = 1e5 G px, about the data's median |net flux| of 55 doubled) that
`balance_mismatch` counts as one unit."""


def balance_from_quantities(fake: Mapping[str, jax.Array], real: Mapping[str, jax.Array]) -> jax.Array:
    """`balance_mismatch` of two batches' `matched_quantities`."""
    return sorted_w2(fake["net_flux"] / BALANCE_SCALE, real["net_flux"] / BALANCE_SCALE)


def balance_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of the net flux: the smooth net flux
    of each patch (`matched_quantities`, in units of `BALANCE_SCALE`), sorted and compared rank by rank; 0 when the
    batches agree. The batches must be of one size. A generator that leans to one polarity, or whose patches hold
    more net flux than the data's, pays for it whatever each patch looks like. Float32."""
    return balance_from_quantities(matched_quantities(fake), matched_quantities(real))


PLAGE_SIGMA_PIXELS = 3.0
"""Gaussian smoothing (px) under which the weak field's sign pattern survives only where it is coherent (plage)."""
PLAGE_WEAK_GAUSS = 250.0
"""|Br| (G) below which a pixel counts as weak for `weak_coherence` (soft edge: `SHARPNESS_SOFTNESS_GAUSS`)."""


def gaussian_smooth(field: jax.Array, sigma: float) -> jax.Array:
    """field [B, H, W] convolved with a normalised Gaussian of `sigma` px (taps to 2 sigma), edge padding."""
    radius = max(int(math.ceil(2 * sigma)), 1)
    taps = [math.exp(-0.5 * (offset / sigma) ** 2) for offset in range(-radius, radius + 1)]
    taps = [tap / sum(taps) for tap in taps]
    for axis in (1, 2):
        size = field.shape[axis]
        padded = jnp.pad(field, [(radius, radius) if a == axis else (0, 0) for a in range(3)], mode="edge")
        field = sum(tap * jax.lax.slice_in_dim(padded, i, i + size, axis=axis) for i, tap in enumerate(taps))
    return field


def weak_coherence(images: jax.Array) -> jax.Array:
    """[B] per patch: the mean over the weak pixels (|Br| < `PLAGE_WEAK_GAUSS`, soft edge) of |Br smoothed by a
    Gaussian of `PLAGE_SIGMA_PIXELS`| (G). Plage and unipolar network keep their field under the smoothing; noise
    and salt-and-pepper mixed polarity average to near 0. Input [B, H, W, 1], s = Br / 1000 G."""
    field = images[..., 0].astype(jnp.float32) * units.GAUSS_PER_UNIT
    weak = jax.nn.sigmoid((PLAGE_WEAK_GAUSS - jnp.abs(field)) / SHARPNESS_SOFTNESS_GAUSS)
    smooth = jnp.sqrt(gaussian_smooth(field, PLAGE_SIGMA_PIXELS) ** 2 + 1e-6)
    return jnp.sum(weak * smooth, axis=(1, 2)) / (jnp.sum(weak, axis=(1, 2)) + 1.0)


def plage_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of log(1 + `weak_coherence` / 1 G),
    sorted and compared rank by rank; 0 when the batches agree (batches of one size). A generator whose weak
    field is mixed where the data's is coherent plage pays for it."""
    return sorted_w2(jnp.log1p(weak_coherence(fake)), jnp.log1p(weak_coherence(real)))


def quiet_coherence(images: jax.Array) -> jax.Array:
    """[B] per patch: the share of the quiet pixels' power (|Br| < `quality.QUIET_LEVEL_GAUSS`, soft mask w of edge
    `QUIET_SOFTNESS_GAUSS`; uncentred) that survives smoothing: sum(w m^2) / sum(w Br^2), m the local mean of the
    quiet field (w Br and w each smoothed by a Gaussian of `PLAGE_SIGMA_PIXELS`, then divided, so strong field next
    to a quiet pixel does not spill into it). About 1 for a uniform weak field, the kernel's sum of squared taps
    (about 1 / (4 pi sigma^2)) for white noise, near 0 for mixed polarity at the pixel scale; the data's quiet pixels,
    noise on unipolar plage halves, lie between. Input [B, H, W, 1], s = Br / 1000 G."""
    field = images[..., 0].astype(jnp.float32) * units.GAUSS_PER_UNIT
    quiet = jax.nn.sigmoid((quality_lib.QUIET_LEVEL_GAUSS - jnp.abs(field)) / QUIET_SOFTNESS_GAUSS)
    smooth = gaussian_smooth(quiet * field, PLAGE_SIGMA_PIXELS) / (gaussian_smooth(quiet, PLAGE_SIGMA_PIXELS) + 1e-3)
    return jnp.sum(quiet * smooth**2, axis=(1, 2)) / (jnp.sum(quiet * field**2, axis=(1, 2)) + 1.0)


def coherence_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of `quiet_coherence`, sorted and
    compared rank by rank; 0 when the batches agree (batches of one size)."""
    return sorted_w2(quiet_coherence(fake), quiet_coherence(real))


def mean_gradient(images: jax.Array) -> jax.Array:
    """[B] per patch: the mean over pixels of |grad Br| (G/px), `jnp.gradient`'s central differences (one-sided at
    the borders), the differentiable counterpart of `quality.mean_gradient`. Input [B, H, W, 1], s = Br / 1000 G."""
    return jnp.mean(field_and_gradient(images)[1], axis=(1, 2))


def gradient_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of log(`mean_gradient` / 1 G/px),
    sorted and compared rank by rank; 0 when the batches agree (batches of one size). Unlike `sharpness_mismatch`'s
    pooled band means, it sees each patch: a generator whose patches are all a little too smooth pays for it."""
    return sorted_w2(jnp.log(mean_gradient(fake)), jnp.log(mean_gradient(real)))


BIPOLE_SCALE_PIXELS = 32.0
"""Distance (px) that `bipole_mismatch` counts as one unit: a quarter of the patch."""


def bipole_from_quantities(fake: Mapping[str, jax.Array], real: Mapping[str, jax.Array]) -> jax.Array:
    """`bipole_mismatch` of two batches' `matched_quantities`."""

    def geometry(values: Mapping[str, jax.Array]) -> jax.Array:
        return jnp.stack([values["separation_px"], values["lead_polarity"]], axis=-1) / BIPOLE_SCALE_PIXELS

    return sorted_w2(geometry(fake), geometry(real))


def bipole_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of the bipole's geometry: the smooth
    polarity separation (px) and the column offset of the positive centroid from the negative one (px) of each
    patch (`matched_quantities` ``separation_px`` and ``lead_polarity``, in units of `BIPOLE_SCALE_PIXELS`), each
    sorted and compared rank by rank, averaged; 0 when the batches agree (batches of one size). Inputs
    [B, H, W, 1], s = Br / 1000 G."""
    return bipole_from_quantities(matched_quantities(fake), matched_quantities(real))


SPOT_LEVELS_GAUSS = (150.0, 500.0, 900.0)
"""|Br| levels (G) above which `spot_areas` counts a patch's pixels: the physics' polarity threshold (its ``area``),
the strong field, and the saturated umbrae (the data clip at 1000 G)."""
SPOT_SOFTNESS_GAUSS = 25.0
"""Width (G) of the logistic edges of `spot_areas`' soft level masks."""


def spot_areas(images: jax.Array) -> jax.Array:
    """[B, levels] per patch: the number of pixels whose |Br| lies above each of `SPOT_LEVELS_GAUSS` (soft edges of
    `SPOT_SOFTNESS_GAUSS`), so a patch's strong field is measured by its extent, not its peak. Input [B, H, W, 1],
    s = Br / 1000 G."""
    strength = jnp.abs(images[..., 0].astype(jnp.float32) * units.GAUSS_PER_UNIT)
    levels = jnp.asarray(SPOT_LEVELS_GAUSS, jnp.float32)
    return jnp.sum(jax.nn.sigmoid((strength[..., None] - levels) / SPOT_SOFTNESS_GAUSS), axis=(1, 2))


def spot_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of log(1 + `spot_areas`), each level
    sorted and compared rank by rank, averaged; 0 when the batches agree (batches of one size). A generator whose
    umbrae saturate a few pixels where the data's saturate tens pays for it, patch by patch."""
    return sorted_w2(jnp.log1p(spot_areas(fake)), jnp.log1p(spot_areas(real)))


SPOT_SIZE_LEVELS_GAUSS = (500.0, 900.0)
"""|Br| levels (G) of `spot_sizes`: the strong field (plage clumps, penumbrae) and the saturated umbrae."""
SPOT_SIZE_WIDTHS_PX = (3, 5, 9)
"""Widths (px) of the neighbourhoods `spot_sizes` erodes with: a pixel counts at width w when every pixel of its
neighbourhood w px across lies above the level, so a 1-2 px speckle counts at none and an umbra 10 px across at all."""
SPOT_SIZE_SHAPES = ("square", "octagon")
"""Neighbourhoods of `spot_sizes`: w x w squares, or octagons w px across (3 x 3 squares and 5-pixel crosses in
turn: a digital disc, so a strong region counts about the same whatever its orientation)."""


def _erode(strength: jax.Array, rows: int, cols: int) -> jax.Array:
    """Minimum over a rows x cols window centred on each pixel of [B, H, W, 1]; outside the patch counts as +inf."""
    return -nn.max_pool(-strength, (rows, cols), padding="SAME")


def _erode_cross(strength: jax.Array) -> jax.Array:
    """Minimum over each pixel and its four neighbours."""
    return jnp.minimum(_erode(strength, 3, 1), _erode(strength, 1, 3))


def spot_sizes(images: jax.Array, shape: str = "square") -> jax.Array:
    """[B, levels * widths] per patch: the strong field's granulometry, the soft number of pixels whose whole
    neighbourhood (``shape`` of `SPOT_SIZE_SHAPES`, `SPOT_SIZE_WIDTHS_PX` across) lies above each of
    `SPOT_SIZE_LEVELS_GAUSS` (soft edges of `SPOT_SOFTNESS_GAUSS`), level-major. A square of side L far from the
    border counts (L - w + 1)^2 at width w <= L and none above it, with either shape; outside the patch counts as
    strong, so a spot the border cuts keeps its size. Input [B, H, W, 1], s = Br / 1000 G."""
    if shape not in SPOT_SIZE_SHAPES:
        raise ValueError(f"spot_sizes erodes with a shape of {SPOT_SIZE_SHAPES}, got {shape!r}")
    strength = jnp.abs(images.astype(jnp.float32) * units.GAUSS_PER_UNIT)
    if shape == "square":  # separable: a minimum along rows, then columns
        eroded = [_erode(_erode(strength, width, 1), 1, width) for width in SPOT_SIZE_WIDTHS_PX]
    else:  # each step grows the octagon by 2 px across: a 3 x 3 square, then a cross, in turn (widths odd, rising)
        eroded, current, steps = [], strength, 0
        for width in SPOT_SIZE_WIDTHS_PX:
            while 2 * steps + 1 < width:
                current = _erode(_erode(current, 3, 1), 1, 3) if steps % 2 == 0 else _erode_cross(current)
                steps += 1
            eroded.append(current)
    levels = jnp.asarray(SPOT_SIZE_LEVELS_GAUSS, jnp.float32)
    areas = [jnp.sum(jax.nn.sigmoid((e - levels) / SPOT_SOFTNESS_GAUSS), axis=(1, 2)) for e in eroded]
    return jnp.stack(areas, axis=-1).reshape(images.shape[0], -1)


def spot_size_mismatch(fake: jax.Array, real: jax.Array, shape: str = "square") -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of log(1 + `spot_sizes`), each level
    and width sorted and compared rank by rank, averaged; 0 when the batches agree (batches of one size). Where
    `spot_mismatch` counts the strong field's extent, this asks for it in pieces of the data's sizes: umbrae of
    the data's diameter, plage in coherent clumps rather than a speckle. Its gradient reaches the weakest pixel of
    each neighbourhood, the edges and gaps of the strong field."""
    return sorted_w2(jnp.log1p(spot_sizes(fake, shape)), jnp.log1p(spot_sizes(real, shape)))


def round_spot_size_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """`spot_size_mismatch` with octagonal neighbourhoods, which favour no orientation of the strong field."""
    return spot_size_mismatch(fake, real, "octagon")


UMBRA_SCALE_GAUSS = 100.0
"""|Br| (G) that `umbra_mismatch` counts as one unit."""


def umbra_strength(images: jax.Array) -> jax.Array:
    """[B] per patch: the mean |Br| (G) of its `quality.UMBRA_PIXELS` strongest pixels, the differentiable
    counterpart of `quality.umbra_strength`. Input [B, H, W, 1], s = Br / 1000 G."""
    strength = jnp.abs(images[..., 0].astype(jnp.float32) * units.GAUSS_PER_UNIT).reshape(images.shape[0], -1)
    return jnp.mean(jax.lax.top_k(strength, quality_lib.UMBRA_PIXELS)[0], axis=1)


def umbra_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of `umbra_strength` (in units of
    `UMBRA_SCALE_GAUSS`), sorted and compared rank by rank; 0 when the batches agree (batches of one size). A
    generator whose strongest field stops short of the data's umbrae pays for it; the gradient reaches only each
    patch's strongest pixels."""
    return sorted_w2(umbra_strength(fake) / UMBRA_SCALE_GAUSS, umbra_strength(real) / UMBRA_SCALE_GAUSS)


BORDER_SCALE_GAUSS = 10.0
"""Border excess (G) that `border_mismatch` counts as one unit."""


def border_excess(images: jax.Array) -> jax.Array:
    """[B] per patch: mean |Br| (G) of the outer `quality.BORDER_WIDTH`-pixel frame minus that of the band
    `quality.BORDER_BAND` pixels in, the differentiable counterpart of `quality.border_excess`. Input
    [B, H, W, 1], s = Br / 1000 G."""
    strength = jnp.abs(images[..., 0].astype(jnp.float32) * units.GAUSS_PER_UNIT)
    frame, band = quality_lib.border_masks(strength.shape[1:])
    return jnp.mean(strength[:, frame], axis=1) - jnp.mean(strength[:, band], axis=1)


def border_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of `border_excess` (in units of
    `BORDER_SCALE_GAUSS`), sorted and compared rank by rank; 0 when the batches agree (batches of one size)."""
    return sorted_w2(border_excess(fake) / BORDER_SCALE_GAUSS, border_excess(real) / BORDER_SCALE_GAUSS)


def grid_phase_energy(images: jax.Array, period: int = quality_lib.GRID_PERIOD) -> jax.Array:
    """[period] the batch's mean `quality.phase_energy` (s^2): the differentiable, batch-pooled counterpart of
    `quality.grid_phase_energy`. Input [B, H, W, 1]."""
    return jnp.mean(quality_lib.phase_energy(images[..., 0].astype(jnp.float32), period, jnp), axis=0)


def grid_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Variance over phases of the log `grid_phase_energy` of the generated batch: 0 when every phase is alike,
    as in any magnetogram, whose statistics do not depend on position (so `real` is not needed: its phases differ
    only by sampling noise). Against the block texture of nearest-neighbour upsampling."""
    del real
    log_energy = jnp.log(grid_phase_energy(fake) + 1e-12)
    return jnp.mean((log_energy - jnp.mean(log_energy)) ** 2)


def log_band_power(images: jax.Array) -> jax.Array:
    """[B, bands] log10 of each patch's `quality.band_power` (in s^2, +1e-12) over `quality.SPECTRUM_BAND_EDGES`.
    Input [B, H, H, 1]."""
    return jnp.log10(quality_lib.band_power(images[..., 0].astype(jnp.float32), xp=jnp) + 1e-12)


def spectrum_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of `log_band_power`, band by band
    (sorted and compared rank by rank), averaged over the bands; 0 when the batches agree (batches of one size).
    A generator short of power at some scale (its plage without network texture) pays for it in that band."""
    return sorted_w2(log_band_power(fake), log_band_power(real))


SIGNAL_FLOOR_GAUSS = quality_lib.QUIET_LEVEL_GAUSS
"""|Br| (G) that `signal_field` shrinks every pixel by: about twice the data's quiet-Sun noise width."""


def signal_field(images: jax.Array) -> jax.Array:
    """[B, H, W] (G) the field soft-thresholded at `SIGNAL_FLOOR_GAUSS`: sign(Br) max(|Br| - floor, 0). The quiet
    pixels, mostly noise, become 0 (and pass no gradient); the structure keeps its shape. Input [B, H, W, 1],
    s = Br / 1000 G."""
    field = images[..., 0].astype(jnp.float32) * units.GAUSS_PER_UNIT
    return jnp.sign(field) * jax.nn.relu(jnp.abs(field) - SIGNAL_FLOOR_GAUSS)


def signal_spectrum_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """`spectrum_mismatch` on the `signal_field`s: the squared W2 distance between the batches' distributions of
    log10 band power (G^2, + 1 G^2, far below the ~500 G^2 per mode of the data's noise) of the soft-thresholded
    field, band by band, averaged; 0 when the batches agree (batches of one size). A generator short of small-scale
    power in its structures pays for it there, and cannot pay it back with noise: the quiet pixels do not enter."""

    def log_power(images):
        return jnp.log10(quality_lib.band_power(signal_field(images), xp=jnp) + 1.0)

    return sorted_w2(log_power(fake), log_power(real))


def isotropy_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of `quality.orientation_contrast`
    (log10 axis over diagonal power at wavelengths 2-16 px), band by band, averaged over the bands; 0 when the
    batches agree (batches of one size). A generator that draws its small scales along the pixel grid pays for it.
    Matched to the data rather than to 0: a patch's edges give real magnetograms some axis power too."""
    return sorted_w2(
        quality_lib.orientation_contrast(fake[..., 0].astype(jnp.float32), xp=jnp),
        quality_lib.orientation_contrast(real[..., 0].astype(jnp.float32), xp=jnp),
    )


def sector_mismatch(fake: jax.Array, real: jax.Array) -> jax.Array:
    """Squared 1-D Wasserstein-2 distance between the batches' distributions of the log10 `quality.sector_power`
    (s^2, + 1e-12): the power along the axes and along the diagonals at wavelengths 2-16 px, sector by sector and
    band by band, averaged; 0 when the batches agree (batches of one size). Unlike `isotropy_mismatch`, which a
    generator can meet by adding diagonal power to a cross-hatch, it asks each sector for the data's power."""

    def log_power(images):
        power = quality_lib.sector_power(images[..., 0].astype(jnp.float32), xp=jnp)
        return jnp.log10(power.reshape(images.shape[0], -1) + 1e-12)

    return sorted_w2(log_power(fake), log_power(real))


MATCHING_TERMS = {
    "sharpness": sharpness_mismatch,
    "complexity": complexity_mismatch,
    "complexity_spread": complexity_spread_mismatch,
    "quiet": quiet_mismatch,
    "quiet_spread": quiet_spread_mismatch,
    "balance": balance_mismatch,
    "plage": plage_mismatch,
    "coherence": coherence_mismatch,
    "gradient": gradient_mismatch,
    "bipole": bipole_mismatch,
    "umbra": umbra_mismatch,
    "spot": spot_mismatch,
    "spot_size": spot_size_mismatch,
    "round_spot_size": round_spot_size_mismatch,
    "border": border_mismatch,
    "grid": grid_mismatch,
    "spectrum": spectrum_mismatch,
    "signal_spectrum": signal_spectrum_mismatch,
    "isotropy": isotropy_mismatch,
    "sector": sector_mismatch,
}
"""name -> ``(fake, real) -> scalar`` statistics the generator's loss can match to the real batch, each with the
weight ``config.model.<name>_weight`` (0 or absent = off, the paper)."""

QUANTITY_TERMS = {
    "complexity": complexity_from_quantities,
    "complexity_spread": complexity_spread_from_quantities,
    "bipole": bipole_from_quantities,
    "balance": balance_from_quantities,
}
"""name -> ``(fake quantities, real quantities) -> scalar``: the `MATCHING_TERMS` that read only the batches'
`matched_quantities`, the same values from quantities the train step computes once per batch for all of them."""


def matching_weights(model: Any) -> tuple[tuple[str, float], ...]:
    """The ``(term, weight)`` pairs of `MATCHING_TERMS` that a ``config.model`` turns on (weight > 0), in the
    registry's order.

    Raises:
      ValueError: a negative weight.
    """
    weights = tuple((name, float(model.get(f"{name}_weight", 0.0))) for name in MATCHING_TERMS)
    negative = [f"{name}_weight={weight}" for name, weight in weights if weight < 0]
    if negative:
        raise ValueError(f"matching weights must be >= 0, got {', '.join(negative)}")
    return tuple((name, weight) for name, weight in weights if weight > 0)


def matching_starts(model: Any) -> tuple[tuple[str, int], ...]:
    """The ``(term, start)`` pairs of the terms `matching_weights` turns on whose ``config.model.<term>_start`` is
    set (> 0), in the registry's order: such a term is off for its first ``start`` steps and ramps linearly to its
    full weight at step ``2 * start`` (`matching_scale`), so a term that would pull the generator hard while it is
    still nothing waits for the adversarial game to settle. Its ``<term>_mismatch`` metric is logged unscaled.

    Raises:
      ValueError: a negative or non-integer start, or a ``<term>_start`` whose term is unknown or has no weight.
    """
    weighted = dict(matching_weights(model))
    keys = [key for key in model.keys() if key.endswith("_start") and key != "ema_start"]
    stray = [key for key in keys if key.removesuffix("_start") not in weighted]
    if stray:
        raise ValueError(
            f"{', '.join(stray)} name no matching term with a weight > 0 (terms: {sorted(MATCHING_TERMS)})"
        )
    starts = tuple((name, model[f"{name}_start"]) for name in weighted if f"{name}_start" in keys)
    invalid = [f"{name}_start={start}" for name, start in starts if start != int(start) or start < 0]
    if invalid:
        raise ValueError(f"matching starts must be integers >= 0, got {', '.join(invalid)}")
    return tuple((name, int(start)) for name, start in starts if start > 0)


def matching_scale(step: jax.Array, start: int) -> jax.Array:
    """The share of its weight a term with ``start`` (`matching_starts`) carries at ``step``: 0 before ``start``,
    then (step - start) / start up to 1 at ``2 * start``; 1 for ``start`` 0."""
    if start <= 0:
        return jnp.ones((), jnp.float32)
    return jnp.clip((step - start) / start, 0.0, 1.0).astype(jnp.float32)


def make_optimizer(learning_rate: float, b1: float, b2: float) -> optax.GradientTransformation:
    """Adam (the paper: learning rate 5e-4 with the default betas 0.9, 0.999)."""
    return optax.adam(learning_rate, b1=b1, b2=b2)


def discriminator_variables(params: Any, stats: Any) -> dict:
    """The variables dict for ``discriminator.apply``."""
    return {"params": params, "batch_stats": stats} if stats else {"params": params}


def init_state(
    generator: nn.Module,
    discriminator: nn.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    key: jax.Array,
    latent_dim: int,
    ema: bool = False,
) -> GanState:
    """A fresh state: parameters from `key` (split three ways: G, D, the run's base key); with `ema`
    the moving average starts at the initial generator parameters."""
    g_key, d_key, run_key = jax.random.split(key, 3)
    g_params = generator.init(g_key, jnp.zeros((1, latent_dim), jnp.float32))["params"]
    d_variables = discriminator.init(d_key, jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))
    d_params = d_variables["params"]
    return GanState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        d_stats=d_variables.get("batch_stats", {}),
        g_opt_state=g_tx.init(g_params),
        d_opt_state=d_tx.init(d_params),
        rng=run_key,
        g_ema_params=jax.tree.map(jnp.copy, g_params) if ema else None,
    )


def r1_penalty(discriminator: nn.Module, d_params: Any, d_stats: Any, real: jax.Array) -> jax.Array:
    """Mean over the batch of the squared L2 norm of the gradient of D's logit with respect to its input.

    Args:
      real: [B, 128, 128, 1] patches. Returns: a float32 scalar (differentiable in `d_params`).
    """
    variables = discriminator_variables(d_params, d_stats)

    def logit_sum(images):
        return jnp.sum(discriminator.apply(variables, images, update_stats=False))

    gradients = jax.grad(logit_sum)(real)
    return jnp.mean(jnp.sum(jnp.square(gradients), axis=(1, 2, 3)))


def make_train_step(
    generator: nn.Module,
    discriminator: nn.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    latent_dim: int,
    batch_sharding: NamedSharding | None = None,
    loss: str = "non_saturating",
    ema_decay: float = 0.0,
    compute_dtype: str = "float32",
    r1_gamma: float = 0.0,
    matching: tuple[tuple[str, float], ...] = (),
    ema_start: int = 0,
    matching_start: tuple[tuple[str, int], ...] = (),
    matched_sharpness: float | None = None,
) -> Callable:
    """The pure train step ``(state, batch, key) -> (state, metrics)``.

    Args:
      generator, discriminator: the modules (see `solarjax.models.gan`).
      g_tx, d_tx: their optimisers.
      latent_dim: size of z.
      batch_sharding: if given, the latent batch is laid out like the data batch (so G and D
        run data-parallel on a mesh); None for single-device use.
      loss: 'non_saturating' or 'hinge' (`adversarial_losses`).
      ema_decay: with a state that keeps ``g_ema_params``, they move to
        ``ema_decay * ema + (1 - ema_decay) * g_params`` after the generator's update.
      ema_start: the number of steps during which the average is the trained parameters themselves
        (decay 0); it averages from then on, so a run shorter than `ema_start` samples its raw weights.
      compute_dtype: 'float32' (default) or 'bfloat16': G and D compute in it (parameters and
        inputs cast per pass); parameters, optimiser states, spectral-norm vectors, logits, losses
        and gradients stay float32 (`solarjax.models.precision`).
      r1_gamma: weight of the R1 penalty (Mescheder et al. 2018) added to the discriminator's loss,
        ``r1_gamma / 2 * mean_batch |grad_x D(x)|^2`` on the real patches (0: none, the paper).
      matching: ``(term, weight)`` pairs: ``weight * MATCHING_TERMS[term](G(z), x)`` is added to the
        generator's loss (the `QUANTITY_TERMS` from one `matched_quantities` per batch) and logged as
        ``<term>_mismatch`` (`sharpness_mismatch`: the pixel share and sharpness of the 50-200, 200-500 and >500 G
        structures; `complexity_mismatch`: Schrijver R;
        `complexity_spread_mismatch`: its distribution; `spot_mismatch`: the strong field's extent;
        `quiet_mismatch`: the quiet-Sun width; `quiet_spread_mismatch`: its spread between patches;
        `balance_mismatch`: the net flux's distribution; `plage_mismatch`: the weak field's coherence;
        `coherence_mismatch`: the quiet pixels' coherence; `bipole_mismatch`: the polarity separation and offset;
        `gradient_mismatch`, `umbra_mismatch`, `border_mismatch`, `grid_mismatch`, `spectrum_mismatch`,
        `signal_spectrum_mismatch`, `isotropy_mismatch`, `sector_mismatch`: the per-patch gradient, umbra strength,
        border excess, grid phases, band powers, those above the noise, their orientation and their power by
        orientation; none: the paper).
      matching_start: ``(term, start)`` pairs (`matching_starts`): those terms' weights are scaled by
        `matching_scale` of the step.
      matched_sharpness: the `QUANTITY_TERMS`' mask sharpness (`matched_quantities`; None: smooth_quantities'
        default, whose +-40 G blur a generator can meet with fields the exact R does not count).

    The step takes ``batch = {'image': float32 [B, 128, 128, 1]}`` (s = B / 1000 G) and a PRNG key,
    and returns the new state and scalar metrics: ``g_loss``, ``d_loss``, ``d_real_accuracy``
    (share of real patches with logit > 0), ``d_fake_accuracy`` (share of fakes with logit < 0),
    ``g_grad_norm``, ``d_grad_norm`` (global L2 norms of the gradients).
    """

    g_objective, d_objective = adversarial_losses(loss)
    dtype = precision.compute_dtype_of(compute_dtype)
    mixed = precision.is_mixed(compute_dtype)

    def narrow(tree):  # to the compute dtype; no cast at all in float32
        return precision.cast_floating(tree, dtype) if mixed else tree

    def widen(tree):  # back to float32
        return precision.to_float32(tree) if mixed else tree

    def train_step(state: GanState, batch: Mapping[str, jax.Array], key: jax.Array):
        real = batch["image"]
        z = jax.random.normal(key, (real.shape[0], latent_dim), real.dtype)
        if batch_sharding is not None:
            z = jax.lax.with_sharding_constraint(z, batch_sharding)
        frozen_d = discriminator_variables(narrow(state.d_params), state.d_stats)
        starts = dict(matching_start)
        scales = {name: matching_scale(state.step, starts.get(name, 0)) for name, _ in matching}

        reads_quantities = any(name in QUANTITY_TERMS for name, _ in matching)
        real_quantities = (
            jax.lax.stop_gradient(matched_quantities(real, matched_sharpness)) if reads_quantities else None
        )

        def generator_loss(g_params):
            fake = widen(generator.apply({"params": narrow(g_params)}, narrow(z)))
            logits = widen(discriminator.apply(frozen_d, narrow(fake), update_stats=False))
            fake_quantities = matched_quantities(fake, matched_sharpness) if reads_quantities else None
            mismatches = {
                name: QUANTITY_TERMS[name](fake_quantities, real_quantities)
                if name in QUANTITY_TERMS
                else MATCHING_TERMS[name](fake, real)
                for name, _ in matching
            }
            loss = g_objective(logits) + sum(weight * scales[name] * mismatches[name] for name, weight in matching)
            return loss, (fake, mismatches)

        (g_loss, (fake, mismatches)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(state.g_params)
        fake = jax.lax.stop_gradient(fake)

        def discriminator_loss(d_params):
            real_logits, updated = discriminator.apply(
                discriminator_variables(narrow(d_params), state.d_stats),
                narrow(real),
                update_stats=True,
                mutable=["batch_stats"],
            )
            d_stats = widen(updated.get("batch_stats", {}))
            fake_logits = discriminator.apply(
                discriminator_variables(narrow(d_params), d_stats), narrow(fake), update_stats=False
            )
            real_logits, fake_logits = widen(real_logits), widen(fake_logits)
            objective = d_objective(real_logits, fake_logits)
            if r1_gamma > 0:
                objective = objective + 0.5 * r1_gamma * r1_penalty(discriminator, d_params, d_stats, real)
            return objective, (real_logits, fake_logits, d_stats)

        (d_loss, (real_logits, fake_logits, d_stats)), d_grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
            state.d_params
        )

        g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
        d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
        g_params = optax.apply_updates(state.g_params, g_updates)
        if state.g_ema_params is None:
            g_ema_params = None
        else:
            decay = jnp.where(state.step < ema_start, 0.0, ema_decay)
            g_ema_params = ema_update(state.g_ema_params, g_params, decay)
        new_state = state.replace(
            step=state.step + 1,
            g_params=g_params,
            g_ema_params=g_ema_params,
            d_params=optax.apply_updates(state.d_params, d_updates),
            d_stats=d_stats,
            g_opt_state=g_opt_state,
            d_opt_state=d_opt_state,
        )
        metrics = {
            "g_loss": g_loss,
            "d_loss": d_loss,
            "d_real_accuracy": jnp.mean((real_logits > 0).astype(jnp.float32)),
            "d_fake_accuracy": jnp.mean((fake_logits < 0).astype(jnp.float32)),
            "g_grad_norm": optax.tree.norm(g_grads),
            "d_grad_norm": optax.tree.norm(d_grads),
        }
        metrics.update({f"{name}_mismatch": value for name, value in mismatches.items()})
        return new_state, metrics

    return train_step


@dataclasses.dataclass(frozen=True)
class GanPrograms:
    """The modules, optimisers and jitted programs of one (model, optimiser, mesh).

    Attributes:
      generator, discriminator: flax modules.
      g_tx, d_tx: their optimisers.
      init: ``key -> GanState``, replicated on the mesh.
      train_step: the sharded train step (see `make_train_step`, `jit_train_step`).
      generate: ``(g_params, z [N, latent_dim]) -> images [N, 128, 128, 1]``.
    """

    generator: nn.Module
    discriminator: nn.Module
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    init: Callable[[jax.Array], GanState]
    train_step: Callable
    generate: Callable[[Any, jax.Array], jax.Array]


@functools.lru_cache(maxsize=8)
def build_programs(
    arch: str,
    conv_impl: str,
    latent_dim: int,
    adam: tuple[float, float, float],
    mesh: Mesh,
    loss: str = "non_saturating",
    ema_decay: float = 0.0,
    compute_dtype: str = "float32",
    r1_gamma: float = 0.0,
    noise_widths: tuple[float, ...] = (),
    noise_neighbour_weight: float = 0.0,
    matching: tuple[tuple[str, float], ...] = (),
    ema_start: int = 0,
    matching_start: tuple[tuple[str, int], ...] = (),
    matched_sharpness: float | None = None,
) -> GanPrograms:
    """`GanPrograms` for hashable settings; cached, so a resumed run in the same process (or a
    second run of the same model) reuses the compiled programs.

    Args:
      arch: architecture name; conv_impl: 'matmul' or 'xla'; latent_dim: size of z;
      adam: (learning_rate, b1, b2); mesh: the device mesh; loss: 'non_saturating' or 'hinge';
      ema_decay: 0 (no moving average in the state) or the decay of the generator's EMA;
      ema_start: steps before the EMA starts averaging (`make_train_step`);
      compute_dtype: 'float32' or 'bfloat16' for the train step (`make_train_step`);
      r1_gamma: R1 penalty weight (0 = none); matching: ``(term, weight)`` pairs of `MATCHING_TERMS`
        added to the generator's loss (`matching_weights`; empty = none); matching_start: ``(term, start)``
        pairs of those terms that wait and ramp in (`matching_starts`); matched_sharpness: their quantities' mask
        sharpness (`make_train_step`; None: the default);
      noise_widths, noise_neighbour_weight: the instrument-noise calibration (`calibrate_instrument_noise`)
        of the architectures that need it (`solarjax.models.gan.make_models`).
    """
    if r1_gamma < 0:
        raise ValueError(f"r1_gamma must be >= 0, got {r1_gamma}")
    unknown = [name for name, _ in matching if name not in MATCHING_TERMS]
    if unknown or any(weight < 0 for _, weight in matching):
        raise ValueError(f"matching terms must be from {sorted(MATCHING_TERMS)} with weights >= 0, got {matching}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    if ema_start < 0:
        raise ValueError(f"ema_start must be >= 0, got {ema_start}")
    if matched_sharpness is not None and not matched_sharpness > 0:
        raise ValueError(f"matched_sharpness must be > 0, got {matched_sharpness}")
    if any(name not in dict(matching) or start < 0 for name, start in matching_start):
        raise ValueError(f"matching starts must name matching terms with starts >= 0, got {matching_start}")
    adversarial_losses(loss)  # refuses an unknown loss now
    precision.compute_dtype_of(compute_dtype)  # and an unknown compute dtype
    generator, discriminator = gan_models.make_models(arch, conv_impl, noise_widths, noise_neighbour_weight)
    g_tx, d_tx = make_optimizer(*adam), make_optimizer(*adam)
    init = jax.jit(
        lambda key: init_state(generator, discriminator, g_tx, d_tx, key, latent_dim, ema=ema_decay > 0),
        out_shardings=sharding.replicated(mesh),
    )
    train_step = loop.jit_train_step(
        make_train_step(
            generator,
            discriminator,
            g_tx,
            d_tx,
            latent_dim,
            sharding.batch_sharded(mesh),
            loss=loss,
            ema_decay=ema_decay,
            compute_dtype=compute_dtype,
            r1_gamma=r1_gamma,
            matching=matching,
            ema_start=ema_start,
            matching_start=matching_start,
            matched_sharpness=matched_sharpness,
        ),
        mesh,
    )
    generate = functools.partial(gan_models.apply_generator, gan_models.GeneratorApply(generator))
    return GanPrograms(generator, discriminator, g_tx, d_tx, init, train_step, generate)


def programs_for(config: ml_collections.ConfigDict, mesh: Mesh) -> GanPrograms:
    """`build_programs` for a run config (``conv_impl='auto'`` picks by backend; configs from before
    ``model.loss`` / ``model.ema_decay`` / ``model.ema_start`` / ``compute_dtype`` / ``model.r1_gamma`` /
    ``model.<term>_weight`` / ``model.<term>_start`` existed mean the paper's loss, no EMA, float32, no R1 penalty
    and no matching terms)."""
    conv_impl = config.conv_impl if config.conv_impl != "auto" else gan_models.default_conv_impl()
    adam = (float(config.optimizer.learning_rate), float(config.optimizer.b1), float(config.optimizer.b2))
    return build_programs(
        config.model.arch,
        conv_impl,
        int(config.model.latent_dim),
        adam,
        mesh,
        loss=config.model.get("loss", "non_saturating"),
        ema_decay=float(config.model.get("ema_decay", 0.0)),
        compute_dtype=config.get("compute_dtype", "float32"),
        r1_gamma=float(config.model.get("r1_gamma", 0.0)),
        noise_widths=tuple(float(w) for w in config.model.get("noise_widths", ())),
        noise_neighbour_weight=float(config.model.get("noise_neighbour_weight", 0.0)),
        matching=matching_weights(config.model),
        ema_start=int(config.model.get("ema_start", 0)),
        matching_start=matching_starts(config.model),
        matched_sharpness=config.model.get("matched_sharpness"),
    )


CALIBRATION_QUANTILES = 33
"""Quantiles of the per-patch quiet-pixel width kept by `calibrate_instrument_noise`."""
CALIBRATION_ROUNDS = 4
"""Simulation rounds `calibrate_instrument_noise` takes to match the quiet pixels' neighbour correlation."""


def neighbour_weight_for(correlation: float) -> float:
    """The weight a of `solarjax.models.gan.smooth_neighbours` that gives white noise the lag-1 autocorrelation
    ``correlation`` (2a / (1 + 2a^2) = correlation; clipped to [0, 0.7], a in [0, 1])."""
    rho = float(np.clip(correlation, 0.0, 0.7))
    return 0.0 if rho == 0.0 else (1.0 - math.sqrt(1.0 - 2.0 * rho * rho)) / (2.0 * rho)


def truncated_width(sigma: np.ndarray, limit: float) -> np.ndarray:
    """Standard deviation of N(0, sigma^2) restricted to |x| < limit (what `quality.noise_width` measures of
    Gaussian noise of width sigma), same units as sigma."""
    from scipy import stats

    t = limit / np.maximum(np.asarray(sigma, np.float64), 1e-12)
    inside = 2.0 * stats.norm.cdf(t) - 1.0
    return np.asarray(sigma) * np.sqrt(np.maximum(1.0 - 2.0 * t * stats.norm.pdf(t) / np.maximum(inside, 1e-300), 0.0))


def gaussian_width_for(measured: np.ndarray, limit: float) -> np.ndarray:
    """The Gaussian width sigma whose `truncated_width` is ``measured`` (bisection; measured is capped just
    below the uniform limit, limit / sqrt(3), which no Gaussian reaches)."""
    target = np.minimum(np.asarray(measured, np.float64), 0.98 * limit / math.sqrt(3.0))
    low, high = np.zeros_like(target), np.full_like(target, 100.0 * limit)
    for _ in range(80):
        middle = 0.5 * (low + high)
        below = truncated_width(middle, limit) < target
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    return 0.5 * (low + high)


def calibrate_instrument_noise(images: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The instrument-noise calibration (`solarjax.models.gan.InstrumentNoise`) of training patches
    [N, 128, 128, 1] (normalised field), so that the noise alone measures like the data's quiet pixels:

    * ``noise_widths``: [CALIBRATION_QUANTILES] quantiles (probabilities 0..1) of the per-patch quiet-pixel width
      (`quality.noise_width`), each turned into the Gaussian width that measures so under the quiet cut
      (`gaussian_width_for`), in normalised units;
    * ``noise_neighbour_weight``: the smoothing weight whose noise, simulated and measured like the data
      (`quality.quiet_neighbour_correlation`, which the quiet cut lowers), has the data's median correlation.

    Raises:
      ValueError: fewer than 2 patches with quiet pixels.
    """
    widths = quality_lib.noise_width(images)
    widths = widths[np.isfinite(widths)]
    if len(widths) < 2:
        raise ValueError(f"instrument-noise calibration needs >= 2 patches with quiet pixels, got {len(widths)}")
    limit = quality_lib.QUIET_LEVEL_GAUSS
    sigma = gaussian_width_for(np.quantile(widths, np.linspace(0.0, 1.0, CALIBRATION_QUANTILES)), limit)
    target = float(np.nanmedian(quality_lib.quiet_neighbour_correlation(images)))
    target = target if np.isfinite(target) else 0.0
    white = np.random.default_rng(seed).standard_normal((16, *IMAGE_SHAPE)).astype(np.float32)
    # one simulated patch per 16-quantile of the widths: the quiet cut lowers the correlation more at larger widths
    probabilities = (np.arange(16) + 0.5) / 16
    scale = np.interp(probabilities, np.linspace(0.0, 1.0, len(sigma)), sigma)[:, None, None, None]
    scale = (scale / quality_lib.GAUSS_PER_UNIT).astype(np.float32)
    requested = target
    for _ in range(CALIBRATION_ROUNDS):
        field = np.asarray(gan_models.smooth_neighbours(jnp.asarray(white), neighbour_weight_for(requested)))
        measured = float(np.nanmedian(quality_lib.quiet_neighbour_correlation(scale * field)))
        requested += target - measured
    return {
        "noise_widths": [float(w) / quality_lib.GAUSS_PER_UNIT for w in sigma],
        "noise_neighbour_weight": neighbour_weight_for(requested),
    }


def local_images(batch: Any, local_batch_size: int) -> np.ndarray:
    """The checked ``'image'`` array [local_batch_size, 128, 128, 1] float32 of a data batch."""
    return loop.checked_images(batch, (local_batch_size, *IMAGE_SHAPE))


def reference_batches(factory: loop.DataIteratorFactory, num_images: int, local_batch_size: int):
    """The first `num_images` training patches of a fresh iterator, in batches."""
    iterator = factory()
    for _ in range(-(-num_images // local_batch_size)):
        yield local_images(next(iterator), local_batch_size)


def task_for(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, data_iterator_factory: loop.DataIteratorFactory
) -> loop.Task:
    """The GAN as a `loop.Task`: `programs_for`'s init and step; a grid of ``config.num_grid_samples``
    fixed latents saved as ``samples/step_XXXXXXX.png`` (`sample_params`); the quality figures of
    ``config.quality.num_samples`` generated against the first ``config.quality.num_reference``
    training patches (logged as ``quality/...``; ``config.quality.best_metric`` ranks checkpoints)."""
    workdir = pathlib.Path(workdir)
    local_batch_size = config.batch_size // jax.process_count()
    base_key = jax.random.key(config.seed)

    def build(mesh: Mesh) -> loop.Programs:
        programs = programs_for(config, mesh)
        generate = programs.generate
        grid_latents = jax.random.normal(
            jax.random.fold_in(base_key, 1), (config.num_grid_samples, config.model.latent_dim)
        )

        def sample(state: GanState, step: int) -> None:
            monitor.save_sample_grid(
                generate(sampling_params(state), grid_latents),
                workdir / "samples" / f"step_{step:07d}.png",
                title=f"step {step}",
            )

        evaluate = None
        if config.eval_every > 0:
            encoder = quality_lib.random_feature_encoder(config.quality.encoder_seed)
            reference = quality_lib.summarise(
                reference_batches(data_iterator_factory, config.quality.num_reference, local_batch_size), encoder
            )

            def evaluate(state: GanState) -> dict[str, float]:
                params = sampling_params(state)
                batches = quality_lib.generated_batches(
                    lambda z: generate(params, z),
                    config.quality.num_samples,
                    config.quality.batch_size,
                    config.model.latent_dim,
                    jax.random.fold_in(base_key, 2),
                )
                return quality_lib.quality_figures(quality_lib.summarise(batches, encoder), reference)

        return loop.Programs(
            init=lambda: programs.init(base_key), train_step=programs.train_step, evaluate=evaluate, sample=sample
        )

    return loop.Task(
        name="gan",
        fingerprint=checkpoint_lib.model_fingerprint(config.model.to_dict()),
        run_config=loop.config_dict(config),
        image_shape=IMAGE_SHAPE,
        build=build,
        best_metric=config.quality.best_metric,
        best_mode="min",
        log_prefix="quality/",
        progress_fields={"g_loss": ".3f", "d_loss": ".3f"},
        time_first_step=False,
    )


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    data_iterator_factory: loop.DataIteratorFactory | None = None,
) -> GanState:
    """Trains (or resumes) the GAN of `config` in `workdir` up to ``config.total_steps`` steps (`loop.run`).

    Args:
      config: see `solarjax.configs.gan` for the fields.
      workdir: run directory; a run found there (checkpoints) is resumed.
      data_iterator_factory: ``() -> iterator`` of process-local batches ``{'image': [B_local, 128,
        128, 1]}`` with grain's ``get_state``/``set_state``/``start_prefetch``; default:
        `loop.pipeline_iterator_factory(config)`. It is also called once more for the reference
        patches of the quality figures.

    Returns:
      The final train state.

    Raises:
      FingerprintMismatchError: `workdir` holds checkpoints of another model config.
      NonFiniteError: a loss or gradient norm became NaN/Inf (the last good checkpoint is kept).
    """
    factory = data_iterator_factory or loop.pipeline_iterator_factory(config)
    if needs_calibration(config):
        config = _resumed_calibration(config, pathlib.Path(workdir))
    if needs_calibration(config):
        patches = np.concatenate(list(reference_batches(factory, config.quality.num_reference, config.batch_size)))
        config = calibrated(config, patches)
    return loop.run(task_for(config, workdir, factory), config, workdir, factory)


def _resumed_calibration(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> ml_collections.ConfigDict:
    """`config` with the instrument-noise calibration of the newest checkpoint in `workdir` when that checkpoint
    holds the same model up to its calibration (a resumed run reads no data for it); `config` itself when there is
    no checkpoint.

    Raises:
      FingerprintMismatchError: the newest checkpoint holds another model (before any data is read).
    """
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        return config
    checkpoints = checkpoint_lib.RunCheckpoints(directory, fingerprint=None)
    try:
        latest = checkpoints.latest_step()
        if latest is None:
            return config
        info = checkpoints.run_info(latest)
    finally:
        checkpoints.close()
    saved = dict(info.get("config", {}).get("model", {}))
    calibration = {key: saved.pop(key, None) for key in ("noise_widths", "noise_neighbour_weight")}
    if saved == config.model.to_dict() and calibration["noise_widths"]:
        config = config.copy_and_resolve_references()
        config.model.update(calibration)
        return config
    fingerprint = checkpoint_lib.model_fingerprint(config.model.to_dict())
    raise checkpoint_lib.FingerprintMismatchError(
        f"checkpoint {directory}/{latest} holds a model with fingerprint {info.get('fingerprint')}, but this run's "
        f"model config (fingerprint {fingerprint} before its noise calibration) is another: use a new work "
        "directory or the model config the checkpoint was trained with"
    )


def needs_calibration(config: ml_collections.ConfigDict) -> bool:
    """Whether ``config.model`` is an instrument-noise architecture without its calibration yet."""
    return config.model.arch in gan_models.INSTRUMENT_NOISE_ARCHITECTURES and not config.model.get("noise_widths")


def calibrated(config: ml_collections.ConfigDict, patches: np.ndarray) -> ml_collections.ConfigDict:
    """A copy of `config` whose model holds the instrument-noise calibration of training `patches` [N, 128, 128, 1]
    (`calibrate_instrument_noise`) where its architecture needs one (`needs_calibration`); else `config` itself."""
    if not needs_calibration(config):
        return config
    config = config.copy_and_resolve_references()
    config.model.update(calibrate_instrument_noise(patches))
    return config

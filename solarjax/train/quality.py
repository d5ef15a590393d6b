"""Sample-quality figures of a generator: KS distances of physics quantities, Frechet distance.

* Kolmogorov-Smirnov distance per physical quantity (`solarjax.physics.quantities`): the largest
  gap between the empirical CDFs of generated and reference patches, in [0, 1]; undefined values
  (NaN, e.g. a patch with one polarity only) are left out on both sides.
* Frechet distance between Gaussians fitted to encoder features of generated and reference
  patches: ``|mu_g - mu_r|^2 + tr(C_g + C_r - 2 (C_g C_r)^(1/2))`` (the FID formula). Until the
  SimSiam encoder exists the encoder is `random_feature_encoder`: a fixed, untrained convolutional
  network (seeded weights), whose features still separate textures and scales; figures are
  comparable only between runs that use the same encoder.

These figures rank a run's checkpoints (smaller is better).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from solarjax.models import gan as gan_models

Encoder = Callable[[jax.Array], jax.Array]
QuantitiesFn = Callable[[jax.Array], Mapping[str, jax.Array]]


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of the finite values of a and b (NaN if one is empty)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(scipy.stats.ks_2samp(a, b).statistic)


def ks_distances(generated: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """KS distance per quantity present in both dicts of [N] arrays."""
    return {name: ks_distance(generated[name], reference[name])
            for name in sorted(generated) if name in reference}


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and covariance [F, F] (unbiased) of features [N, F], in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, F], got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mean_a, cov_a) and N(mean_b, cov_b).

    tr((C_a C_b)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    matrix C_a^(1/2) C_b C_a^(1/2), which has the same spectrum.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(cov_a)
    sqrt_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)))
    mean_term = float(np.sum((mean_a - mean_b) ** 2))
    return mean_term + float(np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)


@functools.lru_cache(maxsize=4)
def random_feature_encoder(seed: int = 0, channels: tuple[int, ...] = (16, 32, 64, 128)) -> Encoder:
    """A fixed random-feature convolutional encoder: images [N, 128, 128, 1] -> features [N, C].

    Layers: 3x3 stride-2 'VALID' convolutions with `channels` outputs and ReLU (128 -> 63 -> 31 ->
    15 -> 7 pixels), He-normal weights drawn from ``jax.random.key(seed)``, no bias; the features
    are the spatial means of the last layer (C = channels[-1]). The same seed gives the same
    encoder on every machine (and, cached, the same jitted function within a process).
    """
    kernels = []
    key = jax.random.key(seed)
    in_channels = 1
    for out_channels in channels:
        key, sub = jax.random.split(key)
        scale = math.sqrt(2.0 / (9 * in_channels))
        kernels.append(scale * jax.random.normal(sub, (3, 3, in_channels, out_channels)))
        in_channels = out_channels
    conv_impl = gan_models.default_conv_impl()

    @jax.jit
    def encode(images: jax.Array) -> jax.Array:
        x = jnp.asarray(images, jnp.float32)
        for kernel in kernels:
            x = jax.nn.relu(gan_models.conv_valid(x, kernel, 2, conv_impl))
        return jnp.mean(x, axis=(1, 2))

    return encode


def default_quantities_fn() -> QuantitiesFn:
    """`solarjax.physics.quantities` (hard threshold, NaN where undefined)."""
    from solarjax import physics
    return physics.quantities


@dataclasses.dataclass(frozen=True)
class ImageSummary:
    """What the quality figures need of a set of patches.

    Attributes:
      quantities: name -> [N] physical quantity (NaN where undefined).
      features: [N, F] encoder features.
    """

    quantities: dict[str, np.ndarray]
    features: np.ndarray

    @property
    def count(self) -> int:
        return int(self.features.shape[0])


def summarise(batches: Iterable[np.ndarray], encoder: Encoder,
              quantities_fn: QuantitiesFn | None = None) -> ImageSummary:
    """Quantities and features of image batches [B, 128, 128, 1] (consumed one at a time)."""
    quantities_fn = quantities_fn or default_quantities_fn()
    features, quantities = [], {}
    for images in batches:
        images = jnp.asarray(images, jnp.float32)
        features.append(np.asarray(encoder(images)))
        for name, values in quantities_fn(images).items():
            quantities.setdefault(name, []).append(np.asarray(values))
    if not features:
        raise ValueError("summarise got no image batches")
    return ImageSummary({name: np.concatenate(v) for name, v in quantities.items()},
                        np.concatenate(features))


def quality_figures(generated: ImageSummary, reference: ImageSummary) -> dict[str, float]:
    """``{'frechet', 'ks_mean', 'ks/<quantity>' ...}`` of generated against reference patches.

    ``ks_mean`` averages the KS distances that are defined (NaN if none is).
    """
    mean_g, cov_g = gaussian_fit(generated.features)
    mean_r, cov_r = gaussian_fit(reference.features)
    ks = ks_distances(generated.quantities, reference.quantities)
    defined = [v for v in ks.values() if math.isfinite(v)]
    figures = {'frechet': frechet_distance(mean_g, cov_g, mean_r, cov_r),
               'ks_mean': float(np.mean(defined)) if defined else math.nan}
    figures.update({f'ks/{name}': value for name, value in ks.items()})
    return figures


def generated_batches(generate: Callable[[jax.Array], jax.Array], num_samples: int, batch_size: int,
                      latent_dim: int, key: jax.Array) -> Iterable[np.ndarray]:
    """Yields `num_samples` generated patches in batches of `batch_size` (last one padded then cut).

    Args:
      generate: z [batch_size, latent_dim] -> images [batch_size, 128, 128, 1] (one jit shape).
      num_samples: total patches.
      batch_size: latents per call.
      latent_dim: size of z.
      key: PRNG key; z ~ N(0, I) drawn from it, so equal keys give equal samples.
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples ({num_samples}) and batch_size ({batch_size}) must be >= 1")
    for start in range(0, num_samples, batch_size):
        z = jax.random.normal(jax.random.fold_in(key, start), (batch_size, latent_dim))
        yield np.asarray(generate(z))[:min(batch_size, num_samples - start)]

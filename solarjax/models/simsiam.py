"""SimSiam (Chen & He 2021) on a ResNet-18 backbone, flax.linen, with the paper's head sizes.

backbone f: ResNet-18 -> 512-d pooled features (what retrieval embeds)
projector g: 512 -> 512 -> 100, Linear-BN-ReLU, Linear-BN-ReLU, Linear-BN
predictor h: 100 -> 128 -> 100, Linear-BN-ReLU, Linear
BatchNorm placement follows the SimSiam paper and its reference code: every projector layer has BN
(the output BN without learnable scale and bias), linear layers followed by BN have no bias, the
predictor's output layer has neither BN nor ReLU. BN momentum as PyTorch's 0.1 (flax 0.9).

Loss: L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2 with D(p, z) = -cos(p, z) averaged over the batch.

Optional physics head (``physics_head`` > 0 outputs; default 0: no head, the parameters above only):
one linear layer on the backbone features that predicts the standardised exact quantities of the
input view (`solarjax.train.simsiam.physics_aux_loss`), a self-supervised target since the
quantities are computed from the patch itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from solarjax.models.resnet import BATCH_NORM_EPSILON, BATCH_NORM_MOMENTUM, ResNet


def _batch_norm(train: bool, affine: bool = True) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        use_scale=affine,
        use_bias=affine,
    )


class Projector(nn.Module):
    """Projection MLP g: features [N, F] -> [N, dims[-1]]; every layer Linear-BN, ReLU but the last.

    Attributes:
      dims: output size of each layer, the last one's being the projection size; paper (512, 512, 100).
    """

    dims: Sequence[int] = (512, 512, 100)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for i, dim in enumerate(self.dims):
            x = nn.Dense(dim, use_bias=False)(x)
            last = i == len(self.dims) - 1
            x = _batch_norm(train, affine=not last)(x)
            if not last:
                x = nn.relu(x)
        return x


class Predictor(nn.Module):
    """Prediction MLP h: [N, D] -> [N, D] through a hidden Linear-BN-ReLU of `hidden` units."""

    hidden: int = 128
    out: int = 100

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.relu(_batch_norm(train)(nn.Dense(self.hidden, use_bias=False)(x)))
        return nn.Dense(self.out)(x)


class SimSiam(nn.Module):
    """Backbone + projector (the encoder) and predictor.

    Attributes:
      input_channels: image channels (1 for Br).
      width: backbone width (64: ResNet-18 with 512-d features).
      projector_dims: projector layer sizes (paper: 512, 512, 100).
      predictor_hidden: predictor hidden size (paper: 128).
      physics_head: outputs of the linear physics head on the backbone features (0: no head).
    """

    input_channels: int = 1
    width: int = 64
    projector_dims: Sequence[int] = (512, 512, 100)
    predictor_hidden: int = 128
    physics_head: int = 0

    @property
    def feature_dim(self) -> int:
        """Size of the backbone features (8 * width: 512 for ResNet-18)."""
        return ResNet(input_channels=self.input_channels, width=self.width).feature_dim

    def setup(self):
        self.backbone = ResNet(input_channels=self.input_channels, width=self.width)
        self.projector = Projector(dims=tuple(self.projector_dims))
        self.predictor = Predictor(hidden=self.predictor_hidden, out=self.projector_dims[-1])
        self.physics = nn.Dense(self.physics_head) if self.physics_head else None

    def __call__(self, images: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        """One view through the whole network.

        Args:
          images: [N, H, W, input_channels].

        Returns:
          (z, p): projections [N, D] and predictions [N, D], D = projector_dims[-1].
        """
        z, p, _ = self.with_physics(images, train)
        return z, p

    def with_physics(self, images: jax.Array, train: bool) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        """(z, p, physics predictions [N, physics_head] or None without a head) of one view [N, H, W, C]."""
        features = self.backbone(images, train)
        z = self.projector(features, train)
        return z, self.predictor(z, train), None if self.physics is None else self.physics(features)

    def embed(self, images: jax.Array, projection: bool = False) -> jax.Array:
        """Inference embedding (running BN statistics): backbone features [N, F] or projections [N, D]."""
        features = self.backbone(images, train=False)
        return self.projector(features, train=False) if projection else features


def l2_normalise(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows scaled to unit length, x / max(|x|, eps); finite gradient (zero) at x = 0. [N, D] -> [N, D]."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


def negative_cosine(p: jax.Array, z: jax.Array) -> jax.Array:
    """D(p, z) = -mean over the batch of cos(p_i, z_i), with z a stopped-gradient target. [N, D] -> scalar."""
    z = jax.lax.stop_gradient(z)
    return -jnp.mean(jnp.sum(l2_normalise(p) * l2_normalise(z), axis=-1))


def simsiam_loss(p1: jax.Array, p2: jax.Array, z1: jax.Array, z2: jax.Array) -> jax.Array:
    """Symmetric SimSiam loss D(p1, z2)/2 + D(p2, z1)/2 in [-1, 1]; -1 when predictions match targets."""
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)


def collapse_level(outputs: jax.Array) -> jax.Array:
    """max(0, 1 - sqrt(d) * mean_j std_j(outputs_i / |outputs_i|)); 0 = spread out, 1 = collapsed.

    std is the unbiased (N - 1) estimate, as torch.std in the monitor the paper used. A d-dimensional
    output spread over the unit sphere has per-dimension std about 1 / sqrt(d); a collapsed one has
    std 0. outputs: [N, d] -> scalar.
    """
    unit = l2_normalise(outputs)
    mean_std = jnp.mean(jnp.std(unit, axis=0, ddof=1))
    return jnp.maximum(0.0, 1.0 - jnp.sqrt(outputs.shape[-1]) * mean_std)

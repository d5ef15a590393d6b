"""ResNet-18 backbone (flax.linen) for magnetogram patches, laid out as torchvision's resnet18.

Stem: 7x7 stride-2 convolution (no bias), BatchNorm, ReLU, 3x3 stride-2 max-pool; four stages of two
basic blocks (widths w, 2w, 4w, 8w; w = 64 gives the standard 512-d features; stride 2 from the
second stage on, with a 1x1 projection shortcut where the shape changes); global average pool.
Any number of input channels (1 for Br; several for AIA). BatchNorm uses PyTorch's defaults:
momentum 0.1 in PyTorch's convention (flax momentum 0.9) and epsilon 1e-5; convolutions use He
normal initialisation (fan_out), as torchvision. One difference remains: flax updates the running
variance with the biased batch variance, PyTorch with the unbiased one (B / (B - 1): 1.6 % at
batch 64); training-mode outputs and gradients are the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

BATCH_NORM_MOMENTUM = 0.9  # flax convention; equals PyTorch's momentum=0.1
BATCH_NORM_EPSILON = 1e-5

_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train, momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual connection (ResNet-18/34 block).

    Attributes:
      features: output channels.
      strides: stride of the first convolution (and of the projection shortcut).
    """

    features: int
    strides: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """[N, H, W, C] -> [N, H / strides, W / strides, features]."""
        residual = x
        y = nn.Conv(
            self.features,
            (3, 3),
            (self.strides, self.strides),
            padding=((1, 1), (1, 1)),
            use_bias=False,
            kernel_init=_conv_init,
        )(x)
        y = nn.relu(_batch_norm(train)(y))
        y = nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=_conv_init)(y)
        y = _batch_norm(train)(y)
        if residual.shape != y.shape:
            residual = nn.Conv(
                self.features,
                (1, 1),
                (self.strides, self.strides),
                use_bias=False,
                kernel_init=_conv_init,
                name="shortcut_conv",
            )(residual)
            residual = _batch_norm(train, name="shortcut_bn")(residual)
        return nn.relu(y + residual)


class ResNet(nn.Module):
    """ResNet with basic blocks; `ResNet18` fixes the stage depths to (2, 2, 2, 2).

    Attributes:
      input_channels: channels the input must have (checked; 1 for Br magnetograms).
      width: channels of the first stage (64 in ResNet-18; tests use smaller widths).
      stage_sizes: number of basic blocks per stage.
    """

    input_channels: int = 1
    width: int = 64
    stage_sizes: Sequence[int] = (2, 2, 2, 2)

    @property
    def feature_dim(self) -> int:
        """Length of the pooled feature vector: width * 2**(stages - 1) (512 for ResNet-18)."""
        return self.width * 2 ** (len(self.stage_sizes) - 1)

    @nn.compact
    def __call__(self, images: jax.Array, train: bool) -> jax.Array:
        """Pooled features of a batch.

        Args:
          images: [N, H, W, input_channels] (H, W >= 32 so the last stage is at least 1 x 1).
          train: BatchNorm uses batch statistics (and updates 'batch_stats') when True.

        Returns:
          [N, feature_dim] float32.
        """
        if images.ndim != 4 or images.shape[-1] != self.input_channels:
            raise ValueError(f"ResNet expects images [N, H, W, {self.input_channels}], got shape {tuple(images.shape)}")
        x = nn.Conv(
            self.width,
            (7, 7),
            (2, 2),
            padding=((3, 3), (3, 3)),
            use_bias=False,
            kernel_init=_conv_init,
            name="stem_conv",
        )(images)
        x = nn.relu(_batch_norm(train, name="stem_bn")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for stage, num_blocks in enumerate(self.stage_sizes):
            for block in range(num_blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(self.width * 2**stage, strides, name=f"stage{stage + 1}_block{block + 1}")(x, train)
        return jnp.mean(x, axis=(1, 2))


def ResNet18(input_channels: int = 1, width: int = 64) -> ResNet:
    """ResNet-18: 512-d features at width 64 (11,170,240 parameters with one input channel)."""
    return ResNet(input_channels=input_channels, width=width, stage_sizes=(2, 2, 2, 2))

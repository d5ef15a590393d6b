"""GAN generators and discriminators for 128x128 Br patches (flax.linen, stateless modules).

Three architectures, chosen by name (``config.model.arch``):

* ``'simple'``: the paper's generator and discriminator, layer for layer
  (Chatterjee, Munoz-Jaramillo & Malanushenko 2025, arXiv:2502.05351, and the authors' code):
  G: Dense(100 -> 15*15*64) -> three stride-2 3x3 'VALID' transposed convolutions
  (15 -> 31 -> 63 -> pad right/bottom by 1 -> 64 -> 129, cropped to 128) -> tanh; 1,510,081 params.
  D: three stride-2 3x3 'VALID' convolutions (128 -> 63 -> 31 -> 15) -> Dense(100) -> Dense(1);
  1,495,945 params. LeakyReLU(0.2) everywhere, no normalisation.
* ``'resize_conv'``: a stronger pair for accelerators. G grows 8x8x256 to 128x128 by four blocks
  of nearest-neighbour upsampling + 3x3 convolution + LeakyReLU + pixel norm (resize-convolution has
  no checkerboard artefacts, Odena et al. 2016; pixel norm from Karras et al. 2018). D is four
  stride-2 4x4 convolutions (32, 64, 128, 256 channels) and a linear logit, every layer spectrally
  normalised (Miyato et al. 2018); its power-iteration vectors live in the 'batch_stats' collection.
* ``'resize_conv_small'``: the demo's default on CPU: the paper's generator with each stride-2
  transposed convolution replaced by an upsampling convolution of the same width (64, 32, 1
  channels; `small_resize_conv_generator`, 1,710,465 params, no checkerboard) and the paper's
  discriminator. On a loaded 2-core CPU its train step ran at 0.7-0.8x the 'simple' pair's images/s.
* ``'resize_conv_small_edge'``: the same with edge padding in every convolution (zero padding draws
  a frame along the border), and ``'resize_conv_small_edge_noise'``: edge padding plus a learned
  per-pixel noise field at the output (`LatentNoise`, a fixed linear function of z, so G stays
  deterministic in z) for the quiet Sun's instrument noise; ``'resize_conv_small_bilinear_noise'``: the
  latter with bilinear instead of nearest upsampling (`upsample_bilinear_conv`). Same discriminator.
  ``'..._edge_noise_minibatch'`` and ``'..._bilinear_noise_minibatch'``: those generators against
  `MinibatchStatisticsDiscriminator`, the paper's discriminator plus a branch that sees its batch
  (each patch's flux imbalance, the batch's distribution of it, the minibatch standard deviation):
  against the polarity collapse, where a generator draws most patches with one net polarity.
  ``'resize_conv_small_edge_instrument_minibatch'``: the edge generator whose output noise is not learned but
  measured: `InstrumentNoise` adds the training data's quiet-Sun noise (its distribution of per-patch widths
  and its neighbour correlation), against the same discriminator; ``'..._edge_instrument_threshold_minibatch'``
  also soft-thresholds the signal before the noise (`SoftThreshold`): the generator's weak speckle would
  otherwise add to the measured noise; ``'..._edge_instrument_threshold_physics'``: that generator against
  the batch-statistics discriminator that also sees each patch's smooth physical quantities
  (`physics_statistics`); ``'..._edge_instrument_gain_threshold_minibatch'``: the threshold generator whose noise
  has a learned gain (``'..._fast_gain_threshold_minibatch'``: learned at a 20x rate;
  ``'..._fast_gain_bilinear_threshold_minibatch'``: that one with bilinear upsampling into the output layer;
  ``'..._fast_gain_diffuse_threshold_minibatch'`` and ``'..._fast_gain_coarse_diffuse_threshold_minibatch'``: that
  one plus a smooth field from the 32 x 32 or 16 x 16 features after the threshold;
  ``'..._fast_gain_smooth_blocks_diffuse_threshold_minibatch'``: the 32 x 32 one with bilinear upsampling in its two
  blocks and nearest-neighbour upsampling into the output layer; ``'..._fast_gain_diffuse_threshold_clip_minibatch'``:
  the 32 x 32 one whose output tanh is stretched and clipped, `clipped_tanh`, so umbrae saturate as the data's do;
  ``'..._fast_gain_diffuse_threshold_clip_multiscale'``: that generator against the batch-statistics discriminator
  with a third branch that sees the patch averaged to 32 x 32;
  ``'..._fast_gain_bilinear_diffuse_threshold_clip_minibatch'``: the clipped one with bilinear upsampling into the
  output layer, whose (1, 3, 3, 1) filter does not mirror the large-scale field to the axis Nyquist points, where the
  nearest output layer's 2 x 2 blocks draw a cross-hatch along the pixel axes;
  ``'..._fast_gain_all_bilinear_diffuse_threshold_clip_minibatch'``: that one with its two blocks upsampled
  bilinearly too; ``'..._fast_gain_bilinear_textured_diffuse_threshold_clip_minibatch'`` and
  ``'..._fast_gain_all_bilinear_textured_diffuse_threshold_clip_minibatch'``: those two whose plage is a smooth
  envelope times an isotropic log-normal clump texture, `ClumpTexture`; ``'..._textured_concentrated_...'``
  adds round spots and plage clouds drawn from z, `FluxConcentrations`, and ``'..._stretched_...'`` a per-patch
  stretch along one pixel axis; ``'..._structured_...'`` keeps those and drops the convolutional signal
  (`ResizeConvGenerator.conv_signal`); ``'..._network_...'`` adds the quiet Sun's network, `QuietNetwork`, and
  ``'..._network_white_...'`` makes the instrument noise white, `_white_noise`);
  ``'resize_conv_full_edge_instrument_threshold_minibatch'``: the threshold generator
  with a last block at full resolution (`full_resolution_edge_instrument_threshold_generator`).

Conventions: images are NHWC float32 [N, 128, 128, 1], the normalised field s = B / 1000 G, and a
generator's output lies in [-1, 1]; latents z are [N, latent_dim]; a discriminator returns logits [N].
Every discriminator takes ``update_stats`` (advance spectral-norm power iterations) so that trainers
call both architectures alike.

Upsampling convolutions (`upsample_conv`) never form the upsampled image with ``conv_impl='matmul'``:
the four output phases of nearest-2x upsampling + 3x3 convolution are 2x2 correlations of the input.

Convolution arithmetic (``conv_impl``). XLA:CPU runs a convolution fast only when it is a plain
(no lhs dilation) forward convolution it can hand to its fused kernel library; a transposed
convolution is an lhs-dilated convolution, and so is the input gradient of every strided
convolution (which the generator's update needs through D), and these fall back to a slow generic
loop (about 10x slower here). ``conv_impl='matmul'`` therefore expresses each layer as patch
extraction (strided slices and a concatenation) and one matrix product, and each stride-2
transposed convolution by its sub-pixel (phase) decomposition: the four output phases of a 3x3
stride-2 kernel are 2x2 stride-1 correlations of the input, computed together as one stride-1
convolution with 4*Cout outputs followed by depth-to-space. A convolution with fewer outputs than
inputs (the output layers; the resize-convolution generators' 64 -> 32 phases) multiplies first and
shifts after: one product of each pixel with every tap's kernel, then the taps' shifted outputs
summed, so the patch matrix (kh * kw * Cin values per pixel) is never written. Forward and autodiff
backward are then only slices, pads and matrix products. ``conv_impl='xla'`` uses
`lax.conv_general_dilated` / `lax.conv_transpose` directly (the better choice on GPU/TPU). Both give
the same numbers as `flax.linen.Conv` / `flax.linen.ConvTranspose` with the same parameters (tests
check it).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from solarjax import physics

ConvImpl = Literal["matmul", "xla"]
CONV_IMPLS = ("matmul", "xla")
IMAGE_SIZE = 128
LEAKY_SLOPE = 0.2
_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _check_conv_impl(conv_impl: str) -> None:
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")


def leaky_relu(x: jax.Array) -> jax.Array:
    """LeakyReLU with the paper's slope 0.2."""
    return nn.leaky_relu(x, LEAKY_SLOPE)


def conv_patches(x: jax.Array, kernel_height: int, kernel_width: int, stride: int) -> jax.Array:
    """The 'VALID' convolution patches of x, taps concatenated on the channel axis.

    Args:
      x: [N, H, W, C].
      kernel_height, kernel_width: window size.
      stride: the same stride on both spatial axes.

    Returns:
      [N, Ho, Wo, kernel_height * kernel_width * C] with Ho = (H - kernel_height) // stride + 1
      (Wo alike); tap (i, j) occupies channels [(i * kernel_width + j) * C, ... + C), the order of
      ``kernel.reshape(-1, Cout)`` for an HWIO kernel.
    """
    _, height, width, _ = x.shape
    out_height = (height - kernel_height) // stride + 1
    out_width = (width - kernel_width) // stride + 1
    taps = [
        x[:, i : i + stride * (out_height - 1) + 1 : stride, j : j + stride * (out_width - 1) + 1 : stride]
        for i in range(kernel_height)
        for j in range(kernel_width)
    ]
    return jnp.concatenate(taps, axis=-1)


def conv_valid(x: jax.Array, kernel: jax.Array, stride: int, conv_impl: ConvImpl) -> jax.Array:
    """'VALID' cross-correlation, as `flax.linen.Conv` computes it (no kernel flip).

    Args:
      x: [N, H, W, Cin].
      kernel: [kh, kw, Cin, Cout] (HWIO).
      stride: stride on both spatial axes.
      conv_impl: 'matmul' (patches @ kernel) or 'xla' (`lax.conv_general_dilated`).

    Returns:
      [N, (H - kh) // stride + 1, (W - kw) // stride + 1, Cout].
    """
    _check_conv_impl(conv_impl)
    if conv_impl == "xla":
        return lax.conv_general_dilated(x, kernel, (stride, stride), "VALID", dimension_numbers=_DIMENSION_NUMBERS)
    kernel_height, kernel_width, in_channels, out_channels = kernel.shape
    if out_channels < in_channels:
        return _conv_valid_channels_first(x, kernel, stride)
    patches = conv_patches(x, kernel_height, kernel_width, stride)
    return patches @ kernel.reshape(-1, out_channels)


def _conv_valid_channels_first(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`conv_valid` ('matmul') for Cout < Cin: one product of every pixel with every tap's kernel,
    ``x @ [Cin, kh * kw * Cout]``, then the taps' shifted outputs summed. It writes kh * kw * Cout values
    per pixel where the patch matrix writes kh * kw * Cin (32x fewer in a 32 -> 1 output layer)."""
    kernel_height, kernel_width, in_channels, out_channels = kernel.shape
    n, height, width, _ = x.shape
    out_height = (height - kernel_height) // stride + 1
    out_width = (width - kernel_width) // stride + 1
    taps = kernel_height * kernel_width
    products = x @ jnp.transpose(kernel, (2, 0, 1, 3)).reshape(in_channels, taps * out_channels)
    products = products.reshape(n, height, width, taps, out_channels)
    return sum(
        products[
            :,
            i : i + stride * (out_height - 1) + 1 : stride,
            j : j + stride * (out_width - 1) + 1 : stride,
            i * kernel_width + j,
        ]
        for i in range(kernel_height)
        for j in range(kernel_width)
    )


def subpixel_kernel(kernel: jax.Array) -> jax.Array:
    """The 2x2 stride-1 kernel whose outputs are the four phases of a 3x3 stride-2 transposed conv.

    For flax's transposed convolution (``y[o] = sum_k xd[o + k - 2] w[k]`` with x dilated by 2),
    on one axis the even outputs are ``y[2m] = x[m-1] w[0] + x[m] w[2]`` and the odd ones
    ``y[2m+1] = x[m] w[1]``: a 2-tap correlation over (x[m-1], x[m]) with taps (w0, w2) for
    phase 0 and (0, w1) for phase 1. In 2D the phase (a, b) uses the product of the row and
    column taps.

    Args:
      kernel: [3, 3, Cin, Cout] (HWIO, flax's ``nn.ConvTranspose`` layout).

    Returns:
      [2, 2, Cin, 4 * Cout]; output channel (2a + b) * Cout + c is phase (a, b), channel c.
    """
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"subpixel_kernel needs a 3x3 kernel, got shape {kernel.shape}")
    taps = ((0, 2), (None, 1))  # taps[phase][window offset] -> kernel index (None: zero)
    zero = jnp.zeros_like(kernel[0, 0])
    rows = []
    for dr in range(2):
        cols = []
        for dc in range(2):
            phases = []
            for a in range(2):
                for b in range(2):
                    r, c = taps[a][dr], taps[b][dc]
                    phases.append(zero if r is None or c is None else kernel[r, c])
            cols.append(jnp.concatenate(phases, axis=-1))
        rows.append(jnp.stack(cols))
    return jnp.stack(rows)


def depth_to_space(x: jax.Array, channels: int) -> jax.Array:
    """Interleaves 2x2 phases held on the channel axis into space.

    Args:
      x: [N, H, W, 4 * channels], channel (2a + b) * channels + c holding output pixel
        (2h + a, 2w + b), channel c.

    Returns:
      [N, 2H, 2W, channels].
    """
    n, height, width, _ = x.shape
    x = x.reshape(n, height, width, 2, 2, channels)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * height, 2 * width, channels)


def conv_transpose_stride2(x: jax.Array, kernel: jax.Array, conv_impl: ConvImpl) -> jax.Array:
    """3x3 stride-2 'VALID' transposed convolution, as `flax.linen.ConvTranspose` computes it.

    Equals ``lax.conv_transpose(x, kernel, (2, 2), 'VALID')`` (flax's default, no kernel flip).
    With ``conv_impl='matmul'``: pad x by one zero on every side, one 2x2 stride-1 'VALID'
    correlation with `subpixel_kernel` (H+1 rows per phase), depth-to-space, crop to 2H+1.

    Args:
      x: [N, H, W, Cin].
      kernel: [3, 3, Cin, Cout].
      conv_impl: 'matmul' or 'xla'.

    Returns:
      [N, 2H + 1, 2W + 1, Cout].
    """
    _check_conv_impl(conv_impl)
    if conv_impl == "xla":
        return lax.conv_transpose(x, kernel, (2, 2), "VALID", dimension_numbers=_DIMENSION_NUMBERS)
    _, height, width, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    phases = conv_valid(padded, subpixel_kernel(kernel), 1, "matmul")
    return depth_to_space(phases, kernel.shape[-1])[:, : 2 * height + 1, : 2 * width + 1]


def pytorch_default_init(fan_in: int) -> Callable:
    """PyTorch's default initialiser of Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (kaiming_uniform with a = sqrt(5) for weights; the same bound for biases.) PyTorch's fan_in is
    in_features for Linear, Cin * k * k for Conv2d and, from its weight layout, Cout * k * k for
    ConvTranspose2d. The 'simple' models use it, as the authors' PyTorch code does.
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def pad_spatial(x: jax.Array, before: int, after: int) -> jax.Array:
    """Zero-pads the two spatial axes of [N, H, W, C] by `before` / `after` pixels."""
    return jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))


class Conv2D(nn.Module):
    """Square convolution with symmetric zero padding; `nn.Conv` with ``padding=((p, p), (p, p))``.

    Parameters 'kernel' [k, k, Cin, features] and 'bias' [features] (by default LeCun normal and
    zeros, as nn.Conv). Input [N, H, W, Cin]; output [N, (H + 2p - k) // stride + 1, ..., features].
    """

    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    conv_impl: ConvImpl = "matmul"
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel", self.kernel_init, (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        )
        bias = self.param("bias", self.bias_init, (self.features,))
        if self.padding:
            x = pad_spatial(x, self.padding, self.padding)
        return conv_valid(x, kernel, self.stride, self.conv_impl) + bias


class ConvTranspose2x(nn.Module):
    """3x3 stride-2 'VALID' transposed convolution; `nn.ConvTranspose(features, (3, 3), (2, 2), 'VALID')`.

    Parameters 'kernel' [3, 3, Cin, features] and 'bias' [features] (by default LeCun normal and
    zeros, as nn.ConvTranspose). Input [N, H, W, Cin]; output [N, 2H + 1, 2W + 1, features].
    """

    features: int
    conv_impl: ConvImpl = "matmul"
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        return conv_transpose_stride2(x, kernel, self.conv_impl) + bias


def _pytorch_dense(features: int, in_features: int) -> nn.Dense:
    init = pytorch_default_init(in_features)
    return nn.Dense(features, kernel_init=init, bias_init=init)


def _pytorch_conv_transpose(features: int, conv_impl: ConvImpl) -> ConvTranspose2x:
    init = pytorch_default_init(features * 9)
    return ConvTranspose2x(features, conv_impl, kernel_init=init, bias_init=init)


def _pytorch_conv(features: int, in_features: int, conv_impl: ConvImpl) -> Conv2D:
    init = pytorch_default_init(in_features * 9)
    return Conv2D(features, 3, stride=2, conv_impl=conv_impl, kernel_init=init, bias_init=init)


class SimpleGenerator(nn.Module):
    """The paper's generator: z [N, latent_dim] -> images [N, 128, 128, 1] in [-1, 1].

    Parameters start from PyTorch's default initialisation (`pytorch_default_init`).
    """

    conv_impl: ConvImpl = "matmul"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        x = leaky_relu(_pytorch_dense(15 * 15 * 64, z.shape[-1])(z)).reshape(-1, 15, 15, 64)
        x = leaky_relu(_pytorch_conv_transpose(64, self.conv_impl)(x))  # 31 x 31
        x = leaky_relu(_pytorch_conv_transpose(32, self.conv_impl)(x))  # 63 x 63
        x = pad_spatial(x, 0, 1)  # 64 x 64
        x = jnp.tanh(_pytorch_conv_transpose(1, self.conv_impl)(x))  # 129 x 129
        return x[:, :IMAGE_SIZE, :IMAGE_SIZE]


class SimpleDiscriminator(nn.Module):
    """The paper's discriminator: images [N, 128, 128, 1] -> logits [N].

    Parameters start from PyTorch's default initialisation (`pytorch_default_init`).
    ``update_stats`` is accepted for a uniform discriminator interface; this one has no state.
    """

    conv_impl: ConvImpl = "matmul"

    @nn.compact
    def __call__(self, images: jax.Array, update_stats: bool = False) -> jax.Array:
        x = images
        for features in (32, 64, 64):  # 63, 31, 15
            x = leaky_relu(_pytorch_conv(features, x.shape[-1], self.conv_impl)(x))
        x = x.reshape(x.shape[0], -1)
        x = leaky_relu(_pytorch_dense(100, x.shape[-1])(x))
        return _pytorch_dense(1, 100)(x)[:, 0]


def pixel_norm(x: jax.Array, epsilon: float = 1e-8) -> jax.Array:
    """Normalises each pixel's feature vector to unit root-mean-square (over the last axis)."""
    return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + epsilon)


def upsample_nearest(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> [N, 2H, 2W, C], each pixel repeated 2x2."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def upsample_conv_phase_kernels(kernel: jax.Array) -> jax.Array:
    """The four 2x2 kernels whose outputs are the phases of nearest-2x upsampling + 3x3 'SAME' conv.

    On one axis, output pixel 2m + a of ``conv3(upsample(x))`` (taps w0, w1, w2 at offsets -1, 0, +1)
    reads x[m-1], x[m], x[m] for a = 0 and x[m], x[m], x[m+1] for a = 1: phase 0 is the 2-tap
    correlation (w0, w1 + w2) over (x[m-1], x[m]), phase 1 is (w0 + w1, w2) over (x[m], x[m+1]).
    In 2D phase (a, b) takes the outer combination of the row and column taps.

    Args:
      kernel: [3, 3, Cin, Cout] (HWIO).

    Returns:
      [2 (a), 2 (b), 2, 2, Cin, Cout]: the 2x2 kernel of phase (a, b), whose window starts at
      input offset (a - 1, b - 1).
    """
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"upsample_conv_phase_kernels needs a 3x3 kernel, got shape {kernel.shape}")
    # merge[a] maps the 3 taps onto the phase's 2 window taps: [2 window taps, 3 kernel taps]
    merge = jnp.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], kernel.dtype)
    return jnp.einsum("aip,bjq,pqco->abijco", merge, merge, kernel)


PADDINGS = ("zero", "edge")


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


def pad_spatial_mode(x: jax.Array, width: int, padding: str) -> jax.Array:
    """Pads the two spatial axes of [N, H, W, C] by `width` pixels: 'zero' or 'edge' (repeat the border)."""
    _check_padding(padding)
    pad_width = ((0, 0), (width, width), (width, width), (0, 0))
    return jnp.pad(x, pad_width) if padding == "zero" else jnp.pad(x, pad_width, mode="edge")


def upsample_conv(x: jax.Array, kernel: jax.Array, conv_impl: ConvImpl, padding: str = "zero") -> jax.Array:
    """Nearest-neighbour 2x upsampling followed by a 3x3 convolution with padding 1.

    With ``conv_impl='matmul'`` the upsampled image is never formed: each of the four output phases
    is a 2x2 correlation of the padded input (`upsample_conv_phase_kernels`), 16 instead of 36
    multiply-adds per input pixel and channel pair, then depth-to-space. 'xla' upsamples and calls
    `lax.conv_general_dilated`. Both equal `upsample_nearest` then a 3x3 convolution of the padded
    upsampled image.

    ``padding='zero'`` pads with zeros: a convolution then sees a dark frame around the patch, and
    a generator built of such layers learns a bright or dark rim along the border. ``'edge'``
    repeats the border pixel; after nearest upsampling the border pair is equal, so edge padding
    of the upsampled image equals its reflection and equals upsampling the edge-padded input,
    which is why the phase decomposition holds for both modes.

    Args:
      x: [N, H, W, Cin].
      kernel: [3, 3, Cin, Cout].
      conv_impl: 'matmul' or 'xla'.
      padding: 'zero' or 'edge'.

    Returns:
      [N, 2H, 2W, Cout].
    """
    _check_conv_impl(conv_impl)
    if conv_impl == "xla":
        return conv_valid(pad_spatial_mode(upsample_nearest(x), 1, padding), kernel, 1, "xla")
    _, height, width, _ = x.shape
    padded = pad_spatial_mode(x, 1, padding)
    phase_kernels = upsample_conv_phase_kernels(kernel)
    phases = []
    for a in range(2):
        for b in range(2):
            window = padded[:, a : a + height + 1, b : b + width + 1]
            phases.append(conv_valid(window, phase_kernels[a, b], 1, "matmul"))
    return depth_to_space(jnp.concatenate(phases, axis=-1), kernel.shape[-1])


def upsample_bilinear(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> [N, 2H, 2W, C] by linear interpolation at half-pixel centres, the border
    pixel repeated outside: on one axis out[2m] = (x[m-1] + 3 x[m]) / 4, out[2m+1] = (3 x[m] + x[m+1]) / 4.

    Its filter (1, 3, 3, 1) / 4 has a zero at the Nyquist frequency of the output, so, unlike the
    2x2 blocks of `upsample_nearest`, it adds no power at high wavenumbers (the alias-free
    upsampling of StyleGAN2's generator)."""

    def along(v: jax.Array, axis: int) -> jax.Array:
        size = v.shape[axis]
        padded = jnp.pad(v, [(1, 1) if a == axis else (0, 0) for a in range(v.ndim)], mode="edge")
        before, centre, after = (lax.slice_in_dim(padded, i, i + size, axis=axis) for i in range(3))
        even, odd = (before + 3 * centre) / 4, (3 * centre + after) / 4
        return jnp.stack([even, odd], axis=axis + 1).reshape(v.shape[:axis] + (2 * size,) + v.shape[axis + 1 :])

    return along(along(x, 1), 2)


def upsample_bilinear_conv_phase_kernel(kernel: jax.Array) -> jax.Array:
    """The 3x3 kernel [3, 3, Cin, 4 * Cout] whose output channels (phase (a, b) at 2a + b, then Cout)
    are the four phases of `upsample_bilinear` + 3x3 convolution with edge padding, read from the
    edge-padded input at offsets -1, 0, +1.

    On one axis, with kernel taps (w0, w1, w2) at offsets -1, 0, +1, output 2m reads x[m-1], x[m],
    x[m+1] with weights (3 w0 + w1, w0 + 3 w1 + 3 w2, w2) / 4 and output 2m + 1 with (w0,
    3 w0 + 3 w1 + w2, w1 + 3 w2) / 4; in 2D phase (a, b) takes the outer combination.
    """
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"upsample_bilinear_conv_phase_kernel needs a 3x3 kernel, got shape {kernel.shape}")
    # merge[a] maps the 3 kernel taps onto the phase's 3 window taps: [3 window taps, 3 kernel taps]
    merge = jnp.array([[[3, 1, 0], [1, 3, 3], [0, 0, 1]], [[1, 0, 0], [3, 3, 1], [0, 1, 3]]], kernel.dtype) / 4
    phases = jnp.einsum("aip,bjq,pqco->ijcabo", merge, merge, kernel)  # [3, 3, Cin, 2, 2, Cout]
    return phases.reshape(3, 3, kernel.shape[2], 4 * kernel.shape[3])


def upsample_bilinear_conv(x: jax.Array, kernel: jax.Array, conv_impl: ConvImpl) -> jax.Array:
    """`upsample_bilinear` followed by a 3x3 convolution with edge padding: [N, H, W, Cin] -> [N, 2H, 2W, Cout].

    With ``conv_impl='matmul'`` the upsampled image is never formed: one 3x3 convolution of the
    edge-padded input gives the four phases (`upsample_bilinear_conv_phase_kernel`, 36 instead of the
    nearest version's 16 multiply-adds per input pixel and channel pair), then depth-to-space. 'xla'
    upsamples and calls `lax.conv_general_dilated`. (Edge padding of the bilinear image equals
    interpolating the edge-padded input, which is why one padded window serves every phase.)
    """
    _check_conv_impl(conv_impl)
    if conv_impl == "xla":
        return conv_valid(pad_spatial_mode(upsample_bilinear(x), 1, "edge"), kernel, 1, "xla")
    phases = conv_valid(pad_spatial_mode(x, 1, "edge"), upsample_bilinear_conv_phase_kernel(kernel), 1, "matmul")
    return depth_to_space(phases, kernel.shape[-1])


UPSAMPLINGS = ("nearest", "bilinear")


class UpsampleConv2D(nn.Module):
    """`upsample_conv` as a layer: [N, H, W, Cin] -> [N, 2H, 2W, features].

    Parameters 'kernel' [3, 3, Cin, features] and 'bias' [features], named and initialised as
    `Conv2D` (LeCun normal, zeros), so ``UpsampleConv2D(f)(x)`` equals
    ``Conv2D(f, 3, padding=1)(upsample_nearest(x))`` with the same parameters.
    """

    features: int
    conv_impl: ConvImpl = "matmul"
    padding: str = "zero"
    upsample: str = "nearest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.upsample == "bilinear":
            return upsample_bilinear_conv(x, kernel, self.conv_impl) + bias
        return upsample_conv(x, kernel, self.conv_impl, self.padding) + bias


def latent_noise_field(z: jax.Array, height: int, width: int, seed: int = 0) -> jax.Array:
    """A per-pixel white-noise field that is a fixed linear function of the latent.

    ``field = z @ W / sqrt(latent_dim)`` with W [latent_dim, height * width] drawn once from N(0, 1)
    (PRNG key `seed`, the same on every call). Across pixels of one image the field is white with
    standard deviation |z| / sqrt(latent_dim) (about 1 for z ~ N(0, I)); for one pixel it is
    N(0, 1) over z. Unlike StyleGAN's per-call random noise it keeps G a deterministic, smooth
    function of z, which the steering, the differentiable targeting and the search need.

    Args:
      z: [N, latent_dim].

    Returns:
      [N, height, width, 1] float32.
    """
    projection = jax.random.normal(jax.random.key(seed), (z.shape[-1], height * width), z.dtype)
    field = (z @ projection) / math.sqrt(z.shape[-1])
    return field.reshape(-1, height, width, 1)


def unit_latent(z: jax.Array) -> jax.Array:
    """z [N, latent_dim] rescaled to norm sqrt(latent_dim) per row: its `latent_noise_field` has unit standard
    deviation over the pixels of every patch."""
    return z * (math.sqrt(z.shape[-1]) / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12))


class LatentNoise(nn.Module):
    """Adds `latent_noise_field` with a per-sample, per-channel amplitude learned from z (StyleGAN-like).

    ``x + (z @ A + a)[:, None, None, :] * latent_noise_field(z)``: A [latent_dim, C] and a [C] start
    at zero (the layer starts as the identity), so the generator learns both the noise level and how
    it varies between patches (the data's instrument noise has a different rms in every patch).
    Input x [N, H, W, C] and z [N, latent_dim]; output like x.
    """

    seed: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
        amplitude = nn.Dense(x.shape[-1], kernel_init=nn.initializers.zeros_init(), name="amplitude")(z)
        field = latent_noise_field(z, x.shape[1], x.shape[2], self.seed)
        return x + amplitude[:, None, None, :] * field


def smooth_neighbours(field: jax.Array, neighbour_weight: float) -> jax.Array:
    """field [N, H, W, 1] convolved with the separable kernel [a, 1, a] x [a, 1, a] (a = ``neighbour_weight``,
    edge padding) and divided by (1 + 2 a^2), so white noise keeps unit variance and gets lag-1 autocorrelation
    2a / (1 + 2 a^2) along rows and columns."""
    a = neighbour_weight
    padded = jnp.pad(field, ((0, 0), (1, 1), (0, 0), (0, 0)), mode="edge")
    field = a * padded[:, :-2] + padded[:, 1:-1] + a * padded[:, 2:]
    padded = jnp.pad(field, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge")
    field = a * padded[:, :, :-2] + padded[:, :, 1:-1] + a * padded[:, :, 2:]
    return field / (1.0 + 2.0 * a * a)


def instrument_noise_width(z: jax.Array, widths: tuple[float, ...], seed: int = 0) -> jax.Array:
    """[N] per-patch noise width: the quantile function of ``widths`` (quantiles at evenly spaced probabilities
    0..1) at Phi(z . u), u a fixed unit vector (PRNG key `seed` + 1); for z ~ N(0, I) the widths are distributed
    as the calibration's."""
    direction = jax.random.normal(jax.random.key(seed + 1), (z.shape[-1],), z.dtype)
    probability = jax.scipy.stats.norm.cdf(z @ (direction / jnp.linalg.norm(direction)))
    table = jnp.asarray(widths, z.dtype)
    return jnp.interp(probability, jnp.linspace(0.0, 1.0, len(widths), dtype=z.dtype), table)


QUIET_LEVEL = 0.05
"""|x| (normalised field) below which `quiet_variance` counts a pixel as quiet: the data's 50 G quiet cut
(`solarjax.train.quality.QUIET_LEVEL_GAUSS`)."""

QUIET_SOFTNESS = 0.005
"""Width (normalised field, 5 G) of the logistic edge of `quiet_variance`'s quiet mask."""

FILL_FLOOR = 0.25
"""The least noise a `InstrumentNoise` with ``fill_quiet`` adds, as a share of its width w(z)."""


def quiet_variance(field: jax.Array) -> jax.Array:
    """[N] variance of the quiet pixels (|field| < `QUIET_LEVEL`, logistic edge `QUIET_SOFTNESS`) of each
    [N, H, W] field, mask-weighted about their weighted mean."""
    quiet = jax.nn.sigmoid((QUIET_LEVEL - jnp.abs(field)) / QUIET_SOFTNESS)
    weight = jnp.sum(quiet, axis=(1, 2)) + 1.0
    mean = jnp.sum(quiet * field, axis=(1, 2)) / weight
    return jnp.sum(quiet * (field - mean[:, None, None]) ** 2, axis=(1, 2)) / weight


FILL_ROUNDS = 2
"""Corrections `fill_quiet_width` makes after its first guess."""


def fill_quiet_width(signal: jax.Array, noise: jax.Array, width: jax.Array) -> jax.Array:
    """[N] the width n of unit ``noise`` [N, H, W] whose sum with ``signal`` [N, H, W] measures like noise of
    ``width`` [N] alone under the quiet cut (`quiet_variance`): first n^2 = w^2 - var_quiet(signal), then
    `FILL_ROUNDS` times n^2 <- n^2 + var_quiet(w noise) - var_quiet(signal + n noise), so signal near the cut that
    the noise carries into the quiet pixels counts as well; n^2 never below (`FILL_FLOOR` w)^2 (which also keeps the
    square root's gradient finite)."""
    floor = (FILL_FLOOR * width) ** 2
    target = quiet_variance(width[:, None, None] * noise)  # what noise of width w alone measures
    fill = jnp.maximum(width**2 - quiet_variance(signal), floor)
    for _ in range(FILL_ROUNDS):
        fill = jnp.maximum(fill + target - quiet_variance(signal + jnp.sqrt(fill)[:, None, None] * noise), floor)
    return jnp.sqrt(fill)


STRETCHED_NOISE_PX = 1.0
"""Correlation length [px] (before the stretch) of `InstrumentNoise`'s stretched share, the second scale of
`TEXTURE_CORRELATION_PX`: at a 2.5x stretch its power at k = 38-64 is 5 times stronger along the axes than along
the diagonals (0.5 px: 1.3 times)."""

STRETCHED_ANGLE_RATE = 4.0
"""Learning-rate multiplier of `InstrumentNoise`'s stretched share: with Adam's step of 5e-4 its angle can move
0.8 rad (a share of 1/2 at pi/4) in 400 steps."""

STRETCHED_NOISE_SEED_OFFSET = 5
"""PRNG key offset of `InstrumentNoise`'s stretched share from its white field's (the texture and the network
use keys 2-4)."""


class InstrumentNoise(nn.Module):
    """Adds the data's measured quiet-Sun noise: ``x + w(z) * smooth(latent_noise_field(z sqrt(d) / |z|))``.

    No parameters: the per-patch width w(z) follows the calibration's distribution of quiet-pixel widths
    (`instrument_noise_width`) and the field has the calibration's neighbour correlation
    (`smooth_neighbours`); both are measured on the training split before training
    (`solarjax.train.gan.calibrate_instrument_noise`). The generator then learns only the field's signal.
    With ``learned_gain`` one parameter, exp(gain_rate * log_gain) (initially 1), scales every width: the data's
    quiet width holds weak field as well as noise, so the noise alone may need to be narrower than the calibration
    (``gain_rate`` multiplies the gain's learning rate, as an equalised learning rate does). With ``patch_gain`` a
    linear function of z (Dense [latent_dim -> 1], initially 0) adds to the log width, so the widths' spread between
    patches is learned too (the weak field under the quiet cut widens narrow patches more than wide ones). With
    ``fill_quiet`` w(z) is the width of the whole quiet field, not of the noise alone: the noise fills what the
    signal leaves of the quiet pixels' measured width (|x| < `QUIET_LEVEL`, soft edge `QUIET_SOFTNESS`;
    `fill_quiet_width`), so a discriminator cannot buy small-scale power with noise. ``output_gain`` is the factor
    the generator's output applies to weak fields (`clipped_tanh`'s gain; 1 for a plain tanh): the fill measures
    the output, ``output_gain * (x + n noise)``, against the width w(z).
    With ``stretched`` (one parameter) the unit field is ``cos(a) white + sin(a) f`` before the smoothing: f a
    `texture_field` of correlation `STRETCHED_NOISE_PX` stretched by the patch's ``log_stretch`` (PRNG key ``seed``
    + `STRETCHED_NOISE_SEED_OFFSET`), a = `STRETCHED_ANGLE_RATE` times a learned parameter (initially
    ``stretched_initial_angle``, 0: white noise alone): the quiet Sun's unresolved internetwork, which resizing a
    SHARP box stretches along one axis as it does the network, in the share sin(a)^2 of the quiet width.
    Input x [N, H, W, 1] (pre-tanh, normalised field), z [N, latent_dim] and optionally ``log_stretch`` [N]
    (`gaussian_filters`; None: isotropic); output like x.
    """

    widths: tuple[float, ...]
    neighbour_weight: float
    seed: int = 0
    learned_gain: bool = False
    gain_rate: float = 1.0
    patch_gain: bool = False
    fill_quiet: bool = False
    output_gain: float = 1.0
    stretched: bool = False
    stretched_initial_angle: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, z: jax.Array, log_stretch: jax.Array | None = None) -> jax.Array:
        # the field of z / |z| * sqrt(d): unit standard deviation in every patch, so w(z) alone sets the width
        unit = unit_latent(z)
        field = latent_noise_field(unit, x.shape[1], x.shape[2], self.seed)
        if self.stretched:
            initial = nn.initializers.constant(self.stretched_initial_angle / STRETCHED_ANGLE_RATE)
            angle = STRETCHED_ANGLE_RATE * self.param("stretched_angle", initial, ())
            one = jnp.ones((z.shape[0], 1), z.dtype)
            seed = self.seed + STRETCHED_NOISE_SEED_OFFSET
            fine = texture_field(z, one, x.shape[1], x.shape[2], seed, log_stretch, (STRETCHED_NOISE_PX,))
            field = jnp.cos(angle) * field + jnp.sin(angle) * fine[..., None]
        field = smooth_neighbours(field, self.neighbour_weight)
        width = instrument_noise_width(z, self.widths, self.seed)
        if self.learned_gain:
            width = width * jnp.exp(self.gain_rate * self.param("log_gain", nn.initializers.zeros, ()))
        if self.patch_gain:
            width = width * jnp.exp(nn.Dense(1, kernel_init=nn.initializers.zeros_init(), name="patch_gain")(z)[:, 0])
        if self.fill_quiet:
            gain = self.output_gain
            width = fill_quiet_width(gain * x[..., 0], field[..., 0], width) / gain
        return x + width[:, None, None, None] * field


class SoftThreshold(nn.Module):
    """sign(x) max(|x| - t, 0) with a learned threshold t = softplus(theta) > 0 (initial ``initial``, normalised
    field): weak values become exactly 0, strong ones pass, shifted by t. Input and output [N, H, W, C]."""

    initial: float = 0.03

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        raw = self.param("threshold", nn.initializers.constant(math.log(math.expm1(self.initial))), ())
        return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - jax.nn.softplus(raw))


TEXTURE_CORRELATION_PX = (0.5, 1.0, 2.0, 4.0)
"""Correlation lengths [px] of the Gaussian filters a `ClumpTexture` mixes, per patch."""


def gaussian_filters(height: int, width: int, correlation_px: tuple[float, ...], log_stretch: jax.Array) -> jax.Array:
    """[N, S, height, width // 2 + 1] amplitude filters exp(-pi^2 sigma^2 (e^l fy^2 + e^-l fx^2)) on the half-plane
    (rfft2) grid, f in cycles per pixel: white noise through filter s is a Gaussian random field with Gaussian
    covariance of correlation length sigma_s e^(l/2) px along the rows' axis (down a column) and sigma_s e^(-l/2) px
    across. ``log_stretch`` [N] is l: 0 gives no preferred direction, as a square-pixel patch; a SHARP box resized
    to 128 x 128 stretches one axis over the other."""
    fy = jnp.fft.fftfreq(height)[:, None]
    fx = jnp.fft.rfftfreq(width)[None, :]
    stretch = jnp.exp(log_stretch)[:, None, None, None]
    sigma = jnp.asarray(correlation_px, jnp.float32)[None, :, None, None]
    return jnp.exp(-(math.pi**2) * sigma**2 * (stretch * fy**2 + fx**2 / stretch))


def texture_field(
    z: jax.Array,
    weights: jax.Array,
    height: int,
    width: int,
    seed: int = 2,
    log_stretch: jax.Array | None = None,
    correlation_px: tuple[float, ...] = TEXTURE_CORRELATION_PX,
) -> jax.Array:
    """Per patch a zero-mean, unit-variance Gaussian random field, a fixed smooth function of z.

    The white `latent_noise_field` of z / |z| sqrt(d) (PRNG key ``seed``) filtered in the Fourier domain by
    ``sum_s weights[n, s] * gaussian_filters(...)[n, s]`` (the first S of ``correlation_px``), then standardised.

    Args:
      z: [N, latent_dim]; weights: [N, S] non-negative mixing weights of the S filters; log_stretch: [N] (None:
        zeros, isotropic), see `gaussian_filters`.

    Returns:
      [N, height, width] float32.
    """
    white = latent_noise_field(unit_latent(z), height, width, seed)[..., 0]
    log_stretch = jnp.zeros(z.shape[:1], z.dtype) if log_stretch is None else log_stretch
    filters = gaussian_filters(height, width, tuple(correlation_px[: weights.shape[-1]]), log_stretch)
    field = jnp.fft.irfft2(jnp.fft.rfft2(white) * jnp.einsum("ns,nshw->nhw", weights, filters), s=(height, width))
    field = field - jnp.mean(field, axis=(1, 2), keepdims=True)
    return field * lax.rsqrt(jnp.mean(jnp.square(field), axis=(1, 2), keepdims=True) + 1e-12)


class ClumpTexture(nn.Module):
    """A multiplicative clump texture of mean 1: ``floor + (1 - floor) * exp(c f) / mean(exp(c f))``.

    f is `texture_field` of z, its filter mixture ``softmax(z @ A + a)`` over ``correlation_px`` (A, a start
    at zero: an even mix); the contrast c = softplus(.) (initially ``initial_contrast``) and floor = sigmoid(.)
    (initially ``initial_floor``) are learned. Plage seen by HMI is unresolved kilogauss flux tubes gathered in
    clumps a few Mm across: a smooth envelope times such a log-normal texture, whose small scales have no preferred
    pixel axis (unlike those a convolution on the pixel grid sharpens) but the patch's own stretch. With
    ``patch_contrast`` a linear function of z (Dense [latent_dim -> 1], initially 0) adds to the contrast's
    pre-softplus value, so how clumpy a patch's plage is can vary between patches apart from its flux. ``cap_sd``
    (> 0) caps f at that many standard deviations, as the synthetic data's clumps are (`CLUMP_CAP_SD`), so a high
    contrast makes a clumpier texture, not a few pixels many times the mean. ``equal_variance_start`` starts the
    mixture at weights proportional to the correlation lengths, where each scale holds an equal share of the
    field's variance (an even mix gives the 0.5-px filter three quarters of it). ``scale_rate`` multiplies the
    mixture's logits (their layer starts at ``start / scale_rate``), so Adam moves the per-patch mix that many times
    faster. ``correlation_px``: the filters' correlation lengths (px). Input z
    [N, latent_dim] and optionally ``log_stretch`` [N] (`gaussian_filters`); output [N, height, width, 1] float32,
    positive, mean 1 per patch.
    """

    height: int = IMAGE_SIZE
    width: int = IMAGE_SIZE
    initial_contrast: float = 0.5
    initial_floor: float = 0.5
    seed: int = 2
    patch_contrast: bool = False
    cap_sd: float = 0.0
    equal_variance_start: bool = False
    scale_rate: float = 1.0
    correlation_px: tuple[float, ...] = TEXTURE_CORRELATION_PX

    @nn.compact
    def __call__(self, z: jax.Array, log_stretch: jax.Array | None = None) -> jax.Array:
        # an even mix of the filters gives the finest most of the variance (a filter of width s passes ~1 / s^2
        # of white noise's); weights proportional to s give each scale an equal share
        start = (
            jnp.log(jnp.asarray(self.correlation_px))
            if self.equal_variance_start
            else jnp.zeros(len(self.correlation_px))
        )
        logits = self.scale_rate * nn.Dense(
            len(self.correlation_px),
            kernel_init=nn.initializers.zeros_init(),
            bias_init=lambda *_: start / self.scale_rate,
            name="scales",
        )(z)
        weights = jax.nn.softmax(logits, axis=-1)
        field = texture_field(z, weights, self.height, self.width, self.seed, log_stretch, self.correlation_px)
        if self.cap_sd:
            field = jnp.minimum(field, self.cap_sd)
        raw = self.param("contrast", nn.initializers.constant(math.log(math.expm1(self.initial_contrast))), ())
        if self.patch_contrast:
            raw = raw + nn.Dense(1, kernel_init=nn.initializers.zeros_init(), name="patch_contrast")(z)[:, :, None]
        contrast = jax.nn.softplus(raw)
        floor = jax.nn.sigmoid(
            self.param("floor", nn.initializers.constant(math.log(self.initial_floor / (1 - self.initial_floor))), ())
        )
        clumps = jnp.exp(contrast * field)
        clumps = clumps / jnp.mean(clumps, axis=(1, 2), keepdims=True)
        return (floor + (1.0 - floor) * clumps)[..., None]


def render_concentrations(
    centres: jax.Array, widths: jax.Array, amplitudes: jax.Array, height: int, width: int
) -> jax.Array:
    """Gaussian concentrations summed on the pixel grid: sum_k a_k exp(-dy^2 / (2 wy_k^2) - dx^2 / (2 wx_k^2)).

    Args:
      centres: [N, K, 2] (row, col) in pixels, the grid's pixel centres at 0.5, 1.5, ...
      widths: [N, K] Gaussian widths (px; round) or [N, K, 2] (along the row axis, along the column axis);
      amplitudes: [N, K] peak values (normalised field).

    Returns:
      [N, height, width, 1]; separable, so K (height + width + height * width) multiply-adds per patch.
    """
    rows = jnp.arange(height, dtype=centres.dtype) + 0.5
    cols = jnp.arange(width, dtype=centres.dtype) + 0.5
    widths = widths if widths.ndim == 3 else jnp.stack([widths, widths], axis=-1)
    inverse = 1.0 / (2.0 * widths**2)
    row_profile = jnp.exp(-jnp.square(rows - centres[..., :1]) * inverse[..., :1])  # [N, K, H]
    col_profile = jnp.exp(-jnp.square(cols - centres[..., 1:]) * inverse[..., 1:])  # [N, K, W]
    return jnp.einsum("nk,nky,nkx->nyx", amplitudes, row_profile, col_profile)[..., None]


def render_umbrae(
    centres: jax.Array, radii: jax.Array, edges: jax.Array, amplitudes: jax.Array, height: int, width: int
) -> jax.Array:
    """Flat-cored discs summed on the pixel grid: sum_k a_k sigmoid((R_k - r_k) / e_k), r_k a pixel's distance from
    centre k, so a sunspot's umbra is a plateau of radius R_k and its penumbra a fall-off e_k wide.

    Args:
      centres: [N, K, 2] (row, col) in pixels, the grid's pixel centres at 0.5, 1.5, ...
      radii: [N, K] plateau radii (px; round) or [N, K, 2] (along the row axis, along the column axis): an
        elliptic disc, whose distance is measured in units of its radii times their geometric mean;
      edges: [N, K] widths (px) of the logistic fall-off of a round disc; an elliptic one's stretches with it
        (e_k r_axis / sqrt(r_row r_col) along each axis);
      amplitudes: [N, K] core values (normalised field).

    Returns:
      [N, height, width, 1]; K * height * width evaluations per patch (not separable).
    """
    rows = jnp.arange(height, dtype=centres.dtype)[:, None] + 0.5
    cols = jnp.arange(width, dtype=centres.dtype)[None, :] + 0.5
    radii = radii if radii.ndim == 3 else jnp.stack([radii, radii], axis=-1)
    mean_radius = jnp.sqrt(radii[..., 0] * radii[..., 1])[..., None, None]  # [N, K, 1, 1]
    dy = (rows - centres[..., :1, None]) / radii[..., :1, None]  # [N, K, H, 1]
    dx = (cols - centres[..., 1:, None]) / radii[..., 1:, None]  # [N, K, 1, W]
    distance = mean_radius * jnp.sqrt(dy**2 + dx**2 + 1e-6)  # px, [N, K, H, W]
    profiles = jax.nn.sigmoid((mean_radius - distance) / edges[..., None, None])
    return jnp.einsum("nk,nkyx->nyx", amplitudes, profiles)[..., None]


SPOT_PROFILES = ("gaussian", "umbra")
"""The shapes `FluxConcentrations` draws: Gaussians (`render_concentrations`) or flat-cored discs (`render_umbrae`)."""

UMBRA_EDGE_PX = (0.3, 0.5)
"""(min, typical) width (px) of an umbra's fall-off: ``min + typical * softplus(.)``, 0.65 px at initialisation (a
fifth of the initial radius with `UMBRA_RADIUS_PX`), so a disc starts flat."""


PENUMBRA_WIDTH_RATIO = 2.5
"""A spot's penumbra width / its umbra's at the start of training: the synthetic training data's
``penumbra_width_ratio`` (`solarjax.data.synthetic.SyntheticConfig`)."""

PENUMBRA_PEAK_FRACTION = 0.3
"""A spot's penumbra peak / its umbra's at the start of training: in the synthetic data a spot's penumbra holds 65%
of its flux in a Gaussian 2.5 times as wide as the umbra's 35%, so its peak is 0.65 / 0.35 / 2.5^2 = 0.30 of the
umbra's."""


class FluxConcentrations(nn.Module):
    """``count`` round flux concentrations drawn from z, Gaussians (`render_concentrations`) or flat-cored discs
    (`render_umbrae`): [N, H, W, 1].

    An MLP (z -> ``hidden`` -> LeakyReLU) gives each concentration a centre anywhere in the patch (tanh-bounded), a
    width ``min_width_px + typical_width_px * softplus(.)`` and a signed peak (normalised field). The peaks' layer
    starts at zero, so the module starts as nothing and the generator grows the concentrations it needs: sunspot
    umbrae round and saturated, plage clouds tens of pixels across, which upsampling convolutions draw only as
    blocks after many steps. With ``log_stretch`` [N] each is stretched by e^(l/2) along the rows' axis and
    shrunk by as much across (`gaussian_filters`). ``profile='umbra'`` draws flat-cored discs instead
    (`render_umbrae`): the width is the plateau's radius, and a fourth geometry feature its edge (`UMBRA_EDGE_PX`).
    ``peak_rate`` multiplies the peaks' layer, so Adam moves the peaks that many times faster. ``penumbra`` gives
    each Gaussian a concentric second one, as a sunspot's penumbra around its umbra: its width is the umbra's times
    ``1 + (r0 - 1) softplus(.) / log 2`` and its peak the umbra's times ``sigmoid(.)``, both drawn from the hidden
    features by layers that start z-independent (at `PENUMBRA_WIDTH_RATIO` r0 and `PENUMBRA_PEAK_FRACTION`), so
    the module starts as nothing, its other parameters drawn as without them.
    """

    count: int
    typical_width_px: float
    min_width_px: float = 1.0
    hidden: int = 128
    height: int = IMAGE_SIZE
    width: int = IMAGE_SIZE
    profile: str = "gaussian"
    peak_rate: float = 1.0
    penumbra: bool = False

    @nn.compact
    def __call__(self, z: jax.Array, log_stretch: jax.Array | None = None) -> jax.Array:
        if self.profile not in SPOT_PROFILES:
            raise ValueError(f"profile must be one of {SPOT_PROFILES}, got {self.profile!r}")
        if self.penumbra and self.profile != "gaussian":
            raise ValueError(f"a penumbra needs the 'gaussian' profile, got {self.profile!r}")
        umbra = self.profile == "umbra"
        per_spot = 4 if umbra else 3  # centre (2), width or radius, and an umbra's edge
        h = leaky_relu(nn.Dense(self.hidden, name="hidden")(z))
        geometry = nn.Dense(per_spot * self.count, name="geometry")(h).reshape(-1, self.count, per_spot)
        peaks = self.peak_rate * nn.Dense(self.count, kernel_init=nn.initializers.zeros_init(), name="peaks")(h)
        size = jnp.asarray([self.height, self.width], z.dtype)
        centres = size / 2 * (1.0 + jnp.tanh(geometry[..., :2]))
        widths = self.min_width_px + self.typical_width_px * jax.nn.softplus(geometry[..., 2])
        if log_stretch is not None:
            half = jnp.exp(log_stretch / 2)[:, None, None]
            widths = widths[..., None] * jnp.concatenate([half, 1.0 / half], axis=-1)
        if umbra:
            edges = UMBRA_EDGE_PX[0] + UMBRA_EDGE_PX[1] * jax.nn.softplus(geometry[..., 3])
            return render_umbrae(centres, widths, edges, peaks, self.height, self.width)
        if self.penumbra:
            zeros = nn.initializers.zeros_init()
            ratio_raw = nn.Dense(self.count, kernel_init=zeros, name="penumbra_width")(h)
            fraction_logit = math.log(PENUMBRA_PEAK_FRACTION / (1.0 - PENUMBRA_PEAK_FRACTION))
            fraction_raw = nn.Dense(
                self.count, kernel_init=zeros, bias_init=nn.initializers.constant(fraction_logit), name="penumbra_peak"
            )(h)
            ratio = 1.0 + (PENUMBRA_WIDTH_RATIO - 1.0) * jax.nn.softplus(ratio_raw) / math.log(2.0)
            ratio = ratio[..., None] if widths.ndim == 3 else ratio
            centres = jnp.concatenate([centres, centres], axis=1)
            widths = jnp.concatenate([widths, widths * ratio], axis=1)
            peaks = jnp.concatenate([peaks, peaks * jax.nn.sigmoid(fraction_raw)], axis=1)
        return render_concentrations(centres, widths, peaks, self.height, self.width)


NETWORK_POLARITY_PX = 8.0
"""Correlation length [px] of a `QuietNetwork`'s polarity pattern (15 Mm on a SHARP patch of ~2 Mm pixels)."""


class QuietNetwork(nn.Module):
    """The quiet Sun's mixed-polarity network: ``density * clumps * tanh(k (g + b))`` [N, H, W, 1].

    g is a unit Gaussian random field of correlation `NETWORK_POLARITY_PX` (`texture_field`, PRNG key ``seed``) and
    the clumps a `ClumpTexture` of z (key ``seed + 1``), both stretched by ``log_stretch`` where given; the density
    (normalised field, initially ``initial_density``) and the net-polarity bias b are drawn from z (linear, then
    softplus and identity), the sharpness k = softplus(.) (initially 3) is learned.
    """

    height: int = IMAGE_SIZE
    width: int = IMAGE_SIZE
    initial_density: float = 0.01
    seed: int = 3

    @nn.compact
    def __call__(self, z: jax.Array, log_stretch: jax.Array | None = None) -> jax.Array:
        one = jnp.ones((z.shape[0], 1), z.dtype)
        pattern = texture_field(z, one, self.height, self.width, self.seed, log_stretch, (NETWORK_POLARITY_PX,))
        sharpness = jax.nn.softplus(self.param("sharpness", nn.initializers.constant(math.log(math.expm1(3.0))), ()))
        bias = nn.Dense(1, kernel_init=nn.initializers.zeros_init(), name="bias")(z)[:, :, None]
        density_init = nn.initializers.constant(math.log(math.expm1(self.initial_density)))
        density = jax.nn.softplus(
            nn.Dense(1, kernel_init=nn.initializers.zeros_init(), bias_init=density_init, name="density")(z)
        )[:, :, None]
        clumps = ClumpTexture(self.height, self.width, seed=self.seed + 1, name="clumps")(z, log_stretch)[..., 0]
        return (density * clumps * jnp.tanh(sharpness * (pattern + bias)))[..., None]


CONCENTRATIONS = {"spots": (8, 2.0), "clouds": (16, 8.0)}
"""(count, typical width px) of a concentrating generator's smooth spots and textured plage clouds."""

STRETCH_LIMIT = math.log(8.0)
"""The default `ResizeConvGenerator.stretch_limit`, the largest |log stretch|: up to 8 times longer along one axis."""


DIFFUSE_SOURCES = ("", "first_block", "start")
"""Features a `ResizeConvGenerator`'s diffuse field is drawn from ('' = no diffuse field)."""


class ResizeConvGenerator(nn.Module):
    """Resize-convolution generator: z [N, latent_dim] -> images [N, 128, 128, 1] in [-1, 1].

    Dense + LeakyReLU -> S x S x base_channels, pixel norm -> one block per entry of
    ``block_channels`` (nearest 2x upsampling + 3x3 convolution, `UpsampleConv2D`, + LeakyReLU + pixel
    norm) -> the output layer -> tanh. The output layer is a 3x3 convolution to 1 channel at 128 x 128
    or, with ``upsample_output``, one more upsampling 3x3 convolution to 1 channel (so no layer runs
    with several channels at full resolution, the costly part on a CPU). S = 128 / 2^(number of
    upsamplings). Defaults: 8 x 8 x 256, blocks (128, 64, 32, 16), 3x3 output ('resize_conv').
    ``padding`` ('zero' or 'edge') is the padding of every 3x3 convolution (`upsample_conv`);
    ``output_noise`` adds a `LatentNoise` field to the output layer before the tanh (the pixel-scale
    instrument noise that convolutions of smooth features do not make); ``noise_widths`` (non-empty) adds the
    calibrated `InstrumentNoise` there instead (with ``noise_neighbour_weight``), after a `SoftThreshold` of the
    signal with ``quiet_threshold`` (so the measured noise alone fills the quiet pixels), with a learned gain with
    ``noise_gain`` (learning rate times ``noise_gain_rate``), a per-patch one with ``noise_patch_gain``, or filling
    what the signal leaves of the quiet width with ``noise_fill`` (measured behind ``output_clip_gain``: the
    `InstrumentNoise` ``output_gain``). ``upsample`` ('nearest' or
    'bilinear') is the 2x upsampling of every block ('bilinear', `upsample_bilinear_conv`, needs edge padding);
    ``output_upsample`` that of the upsampling output layer ('' = ``upsample``). ``diffuse`` (one of
    `DIFFUSE_SOURCES`, '' = none) adds, after the threshold, a smooth field: one linear channel of the first block's
    features ('first_block') or of the starting S x S features ('start'), upsampled bilinearly to 128 x 128
    (initially zero), so weak plage can spread over tens of pixels without passing the threshold.
    ``output_clip_gain`` (> 0) replaces the output tanh by `clipped_tanh` with that gain. ``texture`` makes the
    output layer draw two channels, a smooth one and a textured one, thresholded alike; the diffuse field joins the
    textured one, which is multiplied by a learned `ClumpTexture` of z before the two are summed.
    ``concentrations`` adds `FluxConcentrations` after the threshold: smooth round spots (`CONCENTRATIONS`) to the
    output and plage clouds to the textured channel (without ``texture``, the clouds are textured alone). With
    ``conv_signal=False`` (needs both) the convolutions draw only the diffuse field: the signal is the concentrations,
    the diffuse field and the clump texture alone (no output layer, no threshold, no block after the diffuse source).
    ``stretch`` draws a per-patch log stretch (|l| <= ``stretch_limit``, default `STRETCH_LIMIT`; initially 0) that
    stretches the texture and the concentrations along one pixel axis, as resizing a SHARP box to 128 x 128 does.
    ``network`` adds a `QuietNetwork` before the noise. ``spot_width_px`` (> 0) replaces the spots' typical width
    (px) of `CONCENTRATIONS`; ``spot_profile`` is their shape (`SPOT_PROFILES`; read only with ``concentrations``);
    ``spot_peak_rate`` their peaks' learning-rate multiplier (`FluxConcentrations.peak_rate`).
    ``noise_stretch`` gives the `InstrumentNoise` its learned stretched share (`InstrumentNoise.stretched`), starting
    at the angle ``noise_stretch_angle``. ``texture_patch_contrast`` gives the textured channel's `ClumpTexture` a
    contrast per patch (`ClumpTexture.patch_contrast`). ``spot_penumbra`` gives every spot a penumbra
    (`FluxConcentrations.penumbra`); ``cloud_width_px`` (> 0) replaces the plage clouds' typical width (px) of
    `CONCENTRATIONS`; ``texture_cap_sd`` (> 0) caps the textured channel's `ClumpTexture` field (`ClumpTexture.cap_sd`);
    ``texture_equal_variance`` starts its scales at equal variance shares (`ClumpTexture.equal_variance_start`);
    ``texture_scale_rate`` is their learning-rate multiplier (`ClumpTexture.scale_rate`) and
    ``texture_correlation_px`` their correlation lengths (`ClumpTexture.correlation_px`).
    """

    conv_impl: ConvImpl = "matmul"
    base_channels: int = 256
    block_channels: tuple[int, ...] = (128, 64, 32, 16)
    upsample_output: bool = False
    padding: str = "zero"
    output_noise: bool = False
    upsample: str = "nearest"
    noise_widths: tuple[float, ...] = ()
    noise_neighbour_weight: float = 0.0
    quiet_threshold: bool = False
    noise_gain: bool = False
    noise_gain_rate: float = 1.0
    noise_patch_gain: bool = False
    noise_fill: bool = False
    output_upsample: str = ""
    diffuse: str = ""
    output_clip_gain: float = 0.0
    texture: bool = False
    concentrations: bool = False
    conv_signal: bool = True
    stretch: bool = False
    stretch_limit: float = STRETCH_LIMIT
    network: bool = False
    spot_width_px: float = 0.0
    spot_profile: str = "gaussian"
    spot_peak_rate: float = 1.0
    noise_stretch: bool = False
    noise_stretch_angle: float = 0.0
    texture_patch_contrast: bool = False
    spot_penumbra: bool = False
    cloud_width_px: float = 0.0
    texture_cap_sd: float = 0.0
    texture_equal_variance: bool = False
    texture_scale_rate: float = 1.0
    texture_correlation_px: tuple[float, ...] = TEXTURE_CORRELATION_PX

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        _check_padding(self.padding)
        if not (self.conv_signal or (self.concentrations and self.texture)):
            raise ValueError("a generator without a convolutional signal needs its concentrations and texture")
        if self.diffuse not in DIFFUSE_SOURCES or (self.diffuse == "first_block" and not self.block_channels):
            raise ValueError(
                f"diffuse must be one of {DIFFUSE_SOURCES} ('first_block' needs a block), got {self.diffuse!r}"
            )
        output_upsample = self.output_upsample or self.upsample
        for upsample in (self.upsample, output_upsample):
            if upsample not in UPSAMPLINGS or (upsample == "bilinear" and self.padding != "edge"):
                raise ValueError(
                    f"upsample must be one of {UPSAMPLINGS} ('bilinear' with edge padding), got {upsample!r}"
                )
        start = IMAGE_SIZE // 2 ** (len(self.block_channels) + int(self.upsample_output))
        sources = {}
        if self.conv_signal or self.diffuse:  # without either, no convolutional feature is drawn at all
            x = leaky_relu(nn.Dense(start * start * self.base_channels)(z))
            x = pixel_norm(x.reshape(-1, start, start, self.base_channels))
            sources["start"] = x
        # without a convolutional signal, only the blocks the diffuse field is drawn from run
        blocks = self.block_channels if self.conv_signal else self.block_channels[: int(self.diffuse == "first_block")]
        for index, features in enumerate(blocks):
            # named as the Conv2D of upsample-then-conv, which it equals (same parameter tree)
            x = UpsampleConv2D(features, self.conv_impl, self.padding, self.upsample, name=f"Conv2D_{index}")(x)
            x = pixel_norm(leaky_relu(x))
            if index == 0:
                sources["first_block"] = x
        if self.conv_signal:
            name = f"Conv2D_{len(self.block_channels)}"
            outputs = 2 if self.texture else 1
            if self.upsample_output:
                x = UpsampleConv2D(outputs, self.conv_impl, self.padding, output_upsample, name=name)(x)
            else:
                x = Conv2D(outputs, 3, conv_impl=self.conv_impl, name=name)(pad_spatial_mode(x, 1, self.padding))
            if self.quiet_threshold:
                x = SoftThreshold(name="QuietThreshold")(x)
            x, textured = (x[..., :1], x[..., 1:]) if self.texture else (x, None)
        else:
            x = textured = jnp.zeros((z.shape[0], IMAGE_SIZE, IMAGE_SIZE, 1), z.dtype)
        if self.diffuse:
            smooth = nn.Dense(1, kernel_init=nn.initializers.zeros_init(), name="Diffuse")(sources[self.diffuse])
            while smooth.shape[1] < x.shape[1]:
                smooth = upsample_bilinear(smooth)
            if self.texture:
                textured = textured + smooth
            else:
                x = x + smooth
        log_stretch = None
        if self.stretch:
            raw = nn.Dense(1, kernel_init=nn.initializers.zeros_init(), name="Stretch")(z)[:, 0]
            log_stretch = self.stretch_limit * jnp.tanh(raw)
        if self.concentrations:
            count, typical = CONCENTRATIONS["spots"]
            typical = self.spot_width_px or typical
            spots = FluxConcentrations(
                count,
                typical,
                height=x.shape[1],
                width=x.shape[2],
                profile=self.spot_profile,
                peak_rate=self.spot_peak_rate,
                penumbra=self.spot_penumbra,
                name="Spots",
            )
            x = x + spots(z, log_stretch)
            count, typical = CONCENTRATIONS["clouds"]
            typical = self.cloud_width_px or typical
            clouds = FluxConcentrations(count, typical, height=x.shape[1], width=x.shape[2], name="Clouds")
            textured = clouds(z, log_stretch) if textured is None else textured + clouds(z, log_stretch)
        if textured is not None:
            texture = ClumpTexture(
                x.shape[1],
                x.shape[2],
                patch_contrast=self.texture_patch_contrast,
                cap_sd=self.texture_cap_sd,
                equal_variance_start=self.texture_equal_variance,
                scale_rate=self.texture_scale_rate,
                correlation_px=self.texture_correlation_px,
                name="Texture",
            )
            x = x + textured * texture(z, log_stretch)
        if self.network:
            x = x + QuietNetwork(x.shape[1], x.shape[2], name="Network")(z, log_stretch)
        if self.noise_widths:
            x = InstrumentNoise(
                self.noise_widths,
                self.noise_neighbour_weight,
                learned_gain=self.noise_gain,
                gain_rate=self.noise_gain_rate,
                patch_gain=self.noise_patch_gain,
                fill_quiet=self.noise_fill,
                output_gain=self.output_clip_gain or 1.0,
                stretched=self.noise_stretch,
                stretched_initial_angle=self.noise_stretch_angle,
                name="InstrumentNoise",
            )(x, z, log_stretch)
        elif self.output_noise:
            x = LatentNoise(name="OutputNoise")(x, z)
        if self.output_clip_gain:
            return clipped_tanh(x, self.output_clip_gain)
        return jnp.tanh(x)


def clipped_tanh(x: jax.Array, gain: float) -> jax.Array:
    """``clip(gain * tanh(x), -1, 1)``: tanh, stretched by ``gain`` > 1 and clipped at +-1, so values reach the clip
    exactly (from tanh(x) >= 1 / gain) as the data do, whose preprocessing clips |Br| at 1000 G (a point mass at
    +-1 that a plain tanh never reaches). Its gradient is 0 beyond the clip."""
    return jnp.clip(gain * jnp.tanh(x), -1.0, 1.0)


COARSE_POOL = 4
"""The ``coarse_pool`` of the multi-scale architectures: their discriminator also sees the patch at 32 x 32."""

OUTPUT_CLIP_GAIN = 1.1
"""The ``output_clip_gain`` of the clipped architectures: pixels with tanh(x) >= 0.91 (|Br| >= 910 G before the
clip) saturate at 1000 G."""


def small_resize_conv_generator(
    conv_impl: ConvImpl = "matmul",
    padding: str = "zero",
    output_noise: bool = False,
    upsample: str = "nearest",
    noise_widths: tuple[float, ...] = (),
    noise_neighbour_weight: float = 0.0,
    quiet_threshold: bool = False,
    noise_gain: bool = False,
    noise_gain_rate: float = 1.0,
    noise_patch_gain: bool = False,
    noise_fill: bool = False,
    output_upsample: str = "",
    diffuse: str = "",
    output_clip_gain: float = 0.0,
    texture: bool = False,
    concentrations: bool = False,
    conv_signal: bool = True,
    stretch: bool = False,
    stretch_limit: float = STRETCH_LIMIT,
    network: bool = False,
    spot_width_px: float = 0.0,
    spot_profile: str = "gaussian",
    spot_peak_rate: float = 1.0,
    noise_stretch: bool = False,
    noise_stretch_angle: float = 0.0,
    texture_patch_contrast: bool = False,
    spot_penumbra: bool = False,
    cloud_width_px: float = 0.0,
    texture_cap_sd: float = 0.0,
    texture_equal_variance: bool = False,
    texture_scale_rate: float = 1.0,
    texture_correlation_px: tuple[float, ...] = TEXTURE_CORRELATION_PX,
) -> ResizeConvGenerator:
    """The 'resize_conv_small' generator: the paper's generator with each stride-2 transposed
    convolution replaced by an upsampling convolution of the same width.

    Dense(100 -> 16 x 16 x 64) -> upsample-conv 64 (32 x 32) -> upsample-conv 32 (64 x 64) ->
    upsample-conv 1 (128 x 128) -> tanh, LeakyReLU and pixel norm between; 1,710,465 parameters
    (101 more with ``output_noise``, 1 more each with ``quiet_threshold`` and ``noise_gain``). `padding`,
    `output_noise`, `upsample`, `noise_widths`, `noise_neighbour_weight`, `quiet_threshold`, `noise_gain`,
    `noise_gain_rate`, `noise_patch_gain`, `noise_fill`, `output_upsample`, `diffuse` (65 more parameters),
    `output_clip_gain`, `texture` (a second output channel and the `ClumpTexture`: 695 more parameters),
    `concentrations`, `conv_signal`, `stretch`, `stretch_limit`, `network`, `spot_width_px`, `spot_profile`,
    `spot_peak_rate`, `noise_stretch` (1 more parameter), `noise_stretch_angle`, `texture_patch_contrast` (101 more),
    `spot_penumbra` (2,064 more), `cloud_width_px`, `texture_cap_sd`, `texture_equal_variance`,
    `texture_scale_rate` and `texture_correlation_px` as in `ResizeConvGenerator`.
    """
    return ResizeConvGenerator(
        conv_impl=conv_impl,
        base_channels=64,
        block_channels=(64, 32),
        upsample_output=True,
        padding=padding,
        output_noise=output_noise,
        upsample=upsample,
        noise_widths=tuple(float(w) for w in noise_widths),
        noise_neighbour_weight=float(noise_neighbour_weight),
        quiet_threshold=quiet_threshold,
        noise_gain=noise_gain,
        noise_gain_rate=noise_gain_rate,
        noise_patch_gain=noise_patch_gain,
        noise_fill=noise_fill,
        output_upsample=output_upsample,
        diffuse=diffuse,
        output_clip_gain=output_clip_gain,
        texture=texture,
        concentrations=concentrations,
        conv_signal=conv_signal,
        stretch=stretch,
        stretch_limit=stretch_limit,
        network=network,
        spot_width_px=spot_width_px,
        spot_profile=spot_profile,
        spot_peak_rate=spot_peak_rate,
        noise_stretch=noise_stretch,
        noise_stretch_angle=noise_stretch_angle,
        texture_patch_contrast=texture_patch_contrast,
        spot_penumbra=spot_penumbra,
        cloud_width_px=cloud_width_px,
        texture_cap_sd=texture_cap_sd,
        texture_equal_variance=texture_equal_variance,
        texture_scale_rate=texture_scale_rate,
        texture_correlation_px=tuple(float(c) for c in texture_correlation_px),
    )


def small_resize_conv_edge_instrument_generator(
    conv_impl: ConvImpl = "matmul", noise_widths: tuple[float, ...] = (), noise_neighbour_weight: float = 0.0
) -> ResizeConvGenerator:
    """'resize_conv_small_edge_instrument': edge padding and the calibrated `InstrumentNoise` at the output
    (the same parameters as 'resize_conv_small_edge')."""
    return small_resize_conv_generator(
        conv_impl, padding="edge", noise_widths=noise_widths, noise_neighbour_weight=noise_neighbour_weight
    )


def small_resize_conv_edge_instrument_threshold_generator(
    conv_impl: ConvImpl = "matmul",
    noise_widths: tuple[float, ...] = (),
    noise_neighbour_weight: float = 0.0,
    noise_gain: bool = False,
    gain_rate: float = 1.0,
    patch_gain: bool = False,
    fill: bool = False,
    output_upsample: str = "",
    diffuse: str = "",
    upsample: str = "nearest",
    output_clip_gain: float = 0.0,
    texture: bool = False,
    concentrations: bool = False,
    conv_signal: bool = True,
    stretch: bool = False,
    stretch_limit: float = STRETCH_LIMIT,
    network: bool = False,
    spot_width_px: float = 0.0,
    spot_profile: str = "gaussian",
    spot_peak_rate: float = 1.0,
    noise_stretch: bool = False,
    noise_stretch_angle: float = 0.0,
    texture_patch_contrast: bool = False,
    spot_penumbra: bool = False,
    cloud_width_px: float = 0.0,
    texture_cap_sd: float = 0.0,
    texture_equal_variance: bool = False,
    texture_scale_rate: float = 1.0,
    texture_correlation_px: tuple[float, ...] = TEXTURE_CORRELATION_PX,
) -> ResizeConvGenerator:
    """'resize_conv_small_edge_instrument_threshold': 'resize_conv_small_edge_instrument' whose signal goes
    through a `SoftThreshold` before the noise, so weak speckle does not add to the measured noise. With
    ``noise_gain`` ('..._gain_threshold') the noise has a learned gain (`InstrumentNoise.learned_gain`), so noise
    and weak field can share the quiet width; '..._fast_gain_threshold' learns it ``gain_rate`` (`FAST_GAIN_RATE`)
    times faster. ``output_upsample='bilinear'`` ('..._fast_gain_bilinear_threshold') upsamples bilinearly into
    the 128-px output layer, so its weak field has no 2x2-block texture (that one layer costs 2.25x the
    multiply-adds). ``diffuse`` ('..._fast_gain_diffuse_threshold': 'first_block', 32 x 32;
    '..._fast_gain_coarse_diffuse_threshold': 'start', 16 x 16) adds `ResizeConvGenerator`'s smooth field after the
    threshold. ``upsample='bilinear'`` with ``output_upsample='nearest'`` ('..._fast_gain_smooth_blocks_diffuse_threshold')
    upsamples the two blocks bilinearly and the output layer by nearest neighbours, against the 4-8 px patchwork
    the nearest blocks draw in the weak field. ``output_clip_gain`` ('..._fast_gain_diffuse_threshold_clip'):
    `clipped_tanh` at the output, so umbrae saturate at 1000 G as the data's do. ``texture``
    ('..._bilinear_textured_diffuse_threshold_clip'): plage drawn as a smooth envelope times a `ClumpTexture`;
    ``concentrations`` ('..._bilinear_textured_concentrated_...'): round spots and plage clouds added to it
    (`FluxConcentrations`); ``conv_signal=False`` ('..._structured_...'): those alone, no convolutional signal.
    ``patch_gain`` ('..._patch_gain_...'): the noise's gain per patch (`InstrumentNoise.patch_gain`); ``fill``
    ('..._filled_...'): the noise fills the quiet field's calibrated width (`InstrumentNoise.fill_quiet`);
    ``spot_width_px`` ('..._wide_spots_...'): the spots' typical width (`ResizeConvGenerator.spot_width_px`);
    ``spot_profile='umbra'`` ('..._umbral_spots_...'): flat-cored spots (`render_umbrae`); ``spot_peak_rate``
    ('..._fast_spots_...'): the spots' peaks learned that many times faster (`FluxConcentrations.peak_rate`);
    ``stretch_limit=MILD_STRETCH_LIMIT`` ('..._mild_stretch_...'): a stretch at most 2.5 times; ``noise_stretch``
    ('..._stretched_noise_...'): a learned share of the noise stretched with the patch (`InstrumentNoise.stretched`),
    starting at the angle ``noise_stretch_angle`` ('..._stretched_half_noise_...': pi / 4, half the noise's power);
    ``texture_patch_contrast`` ('..._patch_contrast_...'): the plage texture's contrast per patch
    (`ClumpTexture.patch_contrast`); ``spot_penumbra`` ('..._penumbrae_...'): a penumbra around every spot
    (`FluxConcentrations.penumbra`); ``cloud_width_px`` ('..._wide_clouds_...'): the plage clouds' typical width
    (`ResizeConvGenerator.cloud_width_px`); ``texture_cap_sd`` ('..._capped_texture_...'): the plage texture capped
    (`ClumpTexture.cap_sd`); ``texture_equal_variance`` ('..._scaled_texture_...'): its scales start at equal
    variance shares (`ClumpTexture.equal_variance_start`); with the cap ('..._capped_scaled_texture_...') and
    ``texture_scale_rate`` (`TEXTURE_SCALE_RATE`, '..._capped_fast_scaled_texture_...') that many times faster;
    ``texture_correlation_px`` (`COARSE_TEXTURE_CORRELATION_PX`, '..._capped_coarse_texture_...') the scales."""
    return small_resize_conv_generator(
        conv_impl,
        padding="edge",
        noise_widths=noise_widths,
        noise_neighbour_weight=noise_neighbour_weight,
        quiet_threshold=True,
        noise_gain=noise_gain,
        noise_gain_rate=gain_rate,
        noise_patch_gain=patch_gain,
        noise_fill=fill,
        output_upsample=output_upsample,
        diffuse=diffuse,
        upsample=upsample,
        output_clip_gain=output_clip_gain,
        texture=texture,
        concentrations=concentrations,
        conv_signal=conv_signal,
        stretch=stretch,
        stretch_limit=stretch_limit,
        network=network,
        spot_width_px=spot_width_px,
        spot_profile=spot_profile,
        spot_peak_rate=spot_peak_rate,
        noise_stretch=noise_stretch,
        noise_stretch_angle=noise_stretch_angle,
        texture_patch_contrast=texture_patch_contrast,
        spot_penumbra=spot_penumbra,
        cloud_width_px=cloud_width_px,
        texture_cap_sd=texture_cap_sd,
        texture_equal_variance=texture_equal_variance,
        texture_scale_rate=texture_scale_rate,
        texture_correlation_px=texture_correlation_px,
    )


FAST_GAIN_RATE = 20.0
"""Learning-rate multiplier of the noise gain of '..._fast_gain_threshold_minibatch' (with Adam's step of 5e-4
the gain can change by up to 1% per step)."""


def full_resolution_edge_instrument_threshold_generator(
    conv_impl: ConvImpl = "matmul", noise_widths: tuple[float, ...] = (), noise_neighbour_weight: float = 0.0
) -> ResizeConvGenerator:
    """'resize_conv_full_edge_instrument_threshold': 'resize_conv_small_edge_instrument_threshold' with a third
    block that runs at full resolution (16 channels at 128 x 128) and a 3x3 output convolution there, instead
    of one upsampling convolution from 64 x 64 straight to one channel: the small generator draws every 2x2
    block of the output from the same 2x2 neighbourhood at 64 x 64, and its structures come out smoother
    than the data's at every field level. Dense(100 -> 16 x 16 x 64), blocks (64, 32, 16), edge padding."""
    return ResizeConvGenerator(
        conv_impl=conv_impl,
        base_channels=64,
        block_channels=(64, 32, 16),
        upsample_output=False,
        padding="edge",
        noise_widths=tuple(float(w) for w in noise_widths),
        noise_neighbour_weight=float(noise_neighbour_weight),
        quiet_threshold=True,
    )


def small_resize_conv_edge_generator(conv_impl: ConvImpl = "matmul") -> ResizeConvGenerator:
    """'resize_conv_small_edge': `small_resize_conv_generator` with edge padding (no border frame)."""
    return small_resize_conv_generator(conv_impl, padding="edge")


def small_resize_conv_edge_noise_generator(conv_impl: ConvImpl = "matmul") -> ResizeConvGenerator:
    """'resize_conv_small_edge_noise': edge padding and a learned latent noise field at the output."""
    return small_resize_conv_generator(conv_impl, padding="edge", output_noise=True)


def small_resize_conv_bilinear_noise_generator(conv_impl: ConvImpl = "matmul") -> ResizeConvGenerator:
    """'resize_conv_small_bilinear_noise': 'resize_conv_small_edge_noise' with bilinear instead of
    nearest upsampling in every block (`upsample_bilinear_conv`): the same parameters, no 2x2-block
    texture at high wavenumbers; its upsampling layers cost 2.25x the nearest ones' multiply-adds."""
    return small_resize_conv_generator(conv_impl, padding="edge", output_noise=True, upsample="bilinear")


def flux_imbalance(images: jax.Array, epsilon: float = 1e-6) -> jax.Array:
    """[N] signed flux imbalance of each patch, weighted by field strength: sum(s |s|) / sum(s^2).

    In [-1, 1]: +1 for a unipolar positive patch, 0 for equal positive and negative fields, and
    odd in the field (the patch's sign flip negates it). Weighting by |s| lets the strong field
    decide and the quiet-Sun noise (s ~ 0.025) hardly count; it is smooth in s, so a generator
    gets a gradient through it. Computed in float32 whatever the input's dtype.

    Args:
      images: [N, H, W(, 1)] normalised patches s = B / 1000 G.
    """
    s = images.astype(jnp.float32).reshape(images.shape[0], -1)
    return jnp.sum(s * jnp.abs(s), axis=1) / (jnp.sum(s * s, axis=1) + epsilon)


def minibatch_stddev(features: jax.Array, epsilon: float = 1e-8) -> jax.Array:
    """[] the batch's standard deviation (ddof 0) of every feature, averaged over the features
    (Karras et al. 2018); near 0 for a batch of near-identical samples (mode collapse).

    Args:
      features: [N, ...].
    """
    return jnp.mean(jnp.sqrt(jnp.var(features.astype(jnp.float32), axis=0) + epsilon))


BATCH_STATISTICS = (
    "flux_imbalance",
    "abs_flux_imbalance",
    "batch_mean_flux_imbalance",
    "batch_mean_abs_flux_imbalance",
    "batch_std_flux_imbalance",
    "batch_feature_stddev",
)
"""The columns of `batch_statistics`: two per patch, then four of the whole batch."""


def batch_statistics(images: jax.Array, features: jax.Array) -> jax.Array:
    """[N, 6] what a discriminator sees of a patch's polarity and of its batch (`BATCH_STATISTICS`).

    Per patch: its `flux_imbalance` u and |u|. Per batch (the same in every row): the mean of u,
    of |u| and the standard deviation of u over the batch, and `minibatch_stddev` of `features`.
    The data's patches are balanced (u spread around 0, batch mean about 0); a generator that
    collapsed onto one polarity gives a batch mean of u far from 0, which one patch at a time
    does not show.

    Args:
      images: [N, H, W, 1] normalised patches; features: [N, ...] the discriminator's features of them.
    """
    u = flux_imbalance(images)
    spread = jnp.sqrt(jnp.var(u) + 1e-8)  # finite gradient for a batch of one imbalance (jnp.std's is NaN there)
    batch = jnp.stack([jnp.mean(u), jnp.mean(jnp.abs(u)), spread, minibatch_stddev(features)])
    per_patch = jnp.stack([u, jnp.abs(u)], axis=1)
    return jnp.concatenate([per_patch, jnp.broadcast_to(batch, (u.shape[0], batch.shape[0]))], axis=1)


def signed_log1p(x: jax.Array) -> jax.Array:
    """sign(x) log(1 + |x|): quantities spanning decades on one scale, odd and smooth away from 0."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def physics_statistics(images: jax.Array) -> jax.Array:
    """[N, 9] what a discriminator sees of a patch's physics: `signed_log1p` of each smooth quantity
    (`solarjax.physics.smooth_quantities`, in `solarjax.physics.QUANTITY_NAMES` order), float32.

    Args:
      images: [N, H, W, 1] normalised patches.
    """
    values = physics.smooth_quantities(images.astype(jnp.float32))
    return signed_log1p(jnp.stack([values[name] for name in physics.QUANTITY_NAMES], axis=1))


class MinibatchStatisticsDiscriminator(nn.Module):
    """The paper's discriminator with a branch that sees the batch: images [N, 128, 128, 1] -> logits [N].

    The convolutions and Dense(100) of `SimpleDiscriminator`; beside them `batch_statistics` (each
    patch's flux imbalance and the batch's distribution of it, and the minibatch standard
    deviation of the last convolution's features) -> Dense(`statistics_features`) + LeakyReLU;
    both concatenated -> Dense(1). A patch's logit therefore depends on the other patches of its
    batch, so a generator whose batches are all of one polarity, or all alike, is told apart even
    when each patch on its own looks real (the trainers pass real and generated patches in
    separate batches). PyTorch default initialisation as `SimpleDiscriminator`. With ``physics`` the branch
    also sees each patch's `physics_statistics` (flux, separation, tilt, area, R, ...). With ``coarse_pool``
    (> 0) a third branch sees the patch averaged over ``coarse_pool`` x ``coarse_pool`` pixels
    (`average_pool`; 32 x 32 for 4): two stride-2 convolutions (32, 64 channels) -> Dense(100), concatenated
    before the logit, so the layout of the field (plage halves, their envelopes) is judged apart from its
    pixel-scale texture (a multi-scale discriminator, Wang et al. 2018).
    """

    conv_impl: ConvImpl = "matmul"
    statistics_features: int = 16
    physics: bool = False
    coarse_pool: int = 0

    @nn.compact
    def __call__(self, images: jax.Array, update_stats: bool = False) -> jax.Array:
        x = images
        for features in (32, 64, 64):  # 63, 31, 15
            x = leaky_relu(_pytorch_conv(features, x.shape[-1], self.conv_impl)(x))
        statistics = batch_statistics(images, x)
        if self.physics:
            statistics = jnp.concatenate([statistics, physics_statistics(images)], axis=1)
        statistics = statistics.astype(x.dtype)
        x = leaky_relu(_pytorch_dense(100, x.shape[1] * x.shape[2] * x.shape[3])(x.reshape(x.shape[0], -1)))
        init = pytorch_default_init(statistics.shape[-1])
        branch = nn.Dense(self.statistics_features, kernel_init=init, bias_init=init, name="Statistics")
        branches = [x, leaky_relu(branch(statistics))]
        if self.coarse_pool:
            coarse = average_pool(images, self.coarse_pool)
            for features in (32, 64):  # 15, 7 for a 32 x 32 input
                coarse = leaky_relu(_pytorch_conv(features, coarse.shape[-1], self.conv_impl)(coarse))
            coarse = coarse.reshape(coarse.shape[0], -1)
            branches.append(leaky_relu(_pytorch_dense(100, coarse.shape[-1])(coarse)))
        joined = jnp.concatenate(branches, axis=-1)
        return _pytorch_dense(1, joined.shape[-1])(joined)[:, 0]


def average_pool(images: jax.Array, size: int) -> jax.Array:
    """[N, H, W, C] -> [N, H / size, W / size, C]: the mean of each size x size block (H, W multiples of size)."""
    n, h, w, c = images.shape
    if h % size or w % size:
        raise ValueError(f"average_pool needs H and W divisible by {size}, got {h} x {w}")
    return jnp.mean(images.reshape(n, h // size, size, w // size, size, c), axis=(2, 4))


class SpectralNormDiscriminator(nn.Module):
    """Spectrally normalised discriminator: images [N, 128, 128, 1] -> logits [N].

    Four 4x4 stride-2 convolutions with padding 1 (128 -> 64 -> 32 -> 16 -> 8) and LeakyReLU, then
    a linear logit; each layer wrapped in `nn.SpectralNorm` (one power iteration per call with
    ``update_stats=True``; vectors in the 'batch_stats' collection).
    """

    conv_impl: ConvImpl = "matmul"
    channels: tuple[int, ...] = (32, 64, 128, 256)

    @nn.compact
    def __call__(self, images: jax.Array, update_stats: bool = False) -> jax.Array:
        x = images
        for features in self.channels:
            conv = Conv2D(features, 4, stride=2, padding=1, conv_impl=self.conv_impl)
            x = leaky_relu(nn.SpectralNorm(conv)(x, update_stats=update_stats))
        x = x.reshape(x.shape[0], -1)
        return nn.SpectralNorm(nn.Dense(1))(x, update_stats=update_stats)[:, 0]


_clipped_diffuse_generator = functools.partial(
    small_resize_conv_edge_instrument_threshold_generator,
    noise_gain=True,
    gain_rate=FAST_GAIN_RATE,
    diffuse="first_block",
    output_clip_gain=OUTPUT_CLIP_GAIN,
)
"""The generator of '..._fast_gain_diffuse_threshold_clip_minibatch' and '..._clip_multiscale'."""

_clipped_diffuse_bilinear_output_generator = functools.partial(_clipped_diffuse_generator, output_upsample="bilinear")
"""The generator of '..._fast_gain_bilinear_diffuse_threshold_clip_minibatch': the clipped one, its output layer
upsampled bilinearly (the same parameters)."""

_clipped_diffuse_all_bilinear_generator = functools.partial(_clipped_diffuse_generator, upsample="bilinear")
"""The generator of '..._fast_gain_all_bilinear_diffuse_threshold_clip_minibatch': the clipped one, its two blocks
and its output layer upsampled bilinearly (the same parameters)."""

_clipped_diffuse_textured_generator = functools.partial(
    _clipped_diffuse_generator, output_upsample="bilinear", texture=True
)
"""The generator of '..._fast_gain_bilinear_textured_diffuse_threshold_clip_minibatch': the bilinear-output one
whose plage is a smooth envelope times a `ClumpTexture`."""

_clipped_diffuse_all_bilinear_textured_generator = functools.partial(
    _clipped_diffuse_generator, upsample="bilinear", texture=True
)
"""The generator of '..._fast_gain_all_bilinear_textured_diffuse_threshold_clip_minibatch': the textured one with
its two blocks upsampled bilinearly too."""

_clipped_diffuse_concentrated_generator = functools.partial(_clipped_diffuse_textured_generator, concentrations=True)
"""The generator of '..._fast_gain_bilinear_textured_concentrated_diffuse_threshold_clip_minibatch': the textured
one with round spots and plage clouds drawn from z (`FluxConcentrations`)."""

_clipped_diffuse_structured_generator = functools.partial(_clipped_diffuse_concentrated_generator, conv_signal=False)
"""The generator of '..._fast_gain_structured_diffuse_threshold_clip_minibatch': round spots, textured plage clouds
and the textured diffuse field, no convolutional signal (`ResizeConvGenerator.conv_signal`)."""

_clipped_diffuse_stretched_concentrated_generator = functools.partial(
    _clipped_diffuse_concentrated_generator, stretch=True
)
"""The generator of '..._fast_gain_bilinear_textured_stretched_concentrated_diffuse_threshold_clip_minibatch': the
concentrated one whose texture and concentrations share a per-patch stretch along one pixel axis."""

_clipped_diffuse_stretched_structured_generator = functools.partial(_clipped_diffuse_structured_generator, stretch=True)
"""The generator of '..._fast_gain_stretched_structured_diffuse_threshold_clip_minibatch': the structured one with
the per-patch stretch."""

_clipped_stretched_structured_generator = functools.partial(
    _clipped_diffuse_structured_generator, stretch=True, diffuse=""
)
"""The generator of '..._fast_gain_stretched_structured_threshold_clip_minibatch': the stretched structured one
without a diffuse field: concentrations, texture and noise alone."""

_clipped_coarse_diffuse_stretched_structured_generator = functools.partial(
    _clipped_diffuse_structured_generator, stretch=True, diffuse="start"
)
"""The generator of '..._fast_gain_stretched_structured_coarse_diffuse_threshold_clip_minibatch': the stretched
structured one whose diffuse field comes from the 16 x 16 start."""

_clipped_stretched_structured_network_generator = functools.partial(
    _clipped_stretched_structured_generator, network=True
)
"""The generator of '..._fast_gain_stretched_structured_network_threshold_clip_minibatch': the stretched structured
one without a diffuse field, with the quiet Sun's network (`QuietNetwork`)."""


def _white_noise(generator: Callable[..., ResizeConvGenerator]) -> Callable[..., ResizeConvGenerator]:
    """``generator`` with white instrument noise (neighbour weight 0 whatever the calibration): the data's quiet
    pixels owe their neighbour correlation to the network, which a `QuietNetwork` generator draws itself."""

    def white(
        conv_impl: ConvImpl = "matmul", noise_widths: tuple[float, ...] = (), noise_neighbour_weight: float = 0.0
    ) -> ResizeConvGenerator:
        del noise_neighbour_weight
        return generator(conv_impl, noise_widths, 0.0)

    return white


_white_noise_generator = _white_noise(_clipped_stretched_structured_network_generator)
"""The generator of '..._fast_gain_stretched_structured_network_white_threshold_clip_minibatch'."""

_white_noise_patch_gain_generator = _white_noise(
    functools.partial(_clipped_stretched_structured_network_generator, patch_gain=True)
)
"""The generator of '..._fast_gain_patch_gain_stretched_structured_network_white_threshold_clip_minibatch': the
structured white-noise one whose noise width is learned per patch too."""

_white_noise_filled_generator = _white_noise(
    functools.partial(_clipped_stretched_structured_network_generator, noise_gain=False, fill=True)
)
"""The generator of '..._filled_stretched_structured_network_white_threshold_clip_minibatch': the structured
white-noise one whose noise fills the calibrated quiet width left by its signal, with no learned gain."""

WIDE_SPOT_WIDTH_PX = 6.0
"""Typical spot width (px) of '..._filled_wide_spots_...': three times `CONCENTRATIONS`' 2 px (a spot's Gaussian
width is 1 px plus this times softplus of a latent feature, about 5 px at initialisation against 2.4), so a spot
saturates a disc 10-20 px across with a peak of a few times the clip."""

_white_noise_filled_wide_spots_generator = _white_noise(
    functools.partial(
        _clipped_stretched_structured_network_generator,
        noise_gain=False,
        fill=True,
        spot_width_px=WIDE_SPOT_WIDTH_PX,
    )
)
"""The generator of '..._filled_wide_spots_stretched_structured_network_white_threshold_clip_minibatch': the filled
structured one whose spots are `WIDE_SPOT_WIDTH_PX` wide to begin with."""

UMBRA_RADIUS_PX = 3.0
"""Typical umbra radius (px) of '..._filled_umbral_spots_...': a spot's plateau radius is 1 px plus this times
softplus of a latent feature (3.1 px at initialisation)."""

_white_noise_filled_umbral_spots_generator = _white_noise(
    functools.partial(
        _clipped_stretched_structured_network_generator,
        noise_gain=False,
        fill=True,
        spot_width_px=UMBRA_RADIUS_PX,
        spot_profile="umbra",
    )
)
"""The generator of '..._filled_umbral_spots_stretched_structured_network_white_threshold_clip_minibatch': the
filled structured one whose spots are flat-cored discs with a fall-off (`render_umbrae`), so an umbra saturates
its whole core whatever its size."""

MILD_STRETCH_LIMIT = math.log(2.5)
"""The largest |log stretch| of '..._filled_mild_stretch_...': at most 2.5 times longer along one axis, about the 90th
percentile of the synthetic training patches' pixel aspect (experiments/README.md, session 25); `STRETCH_LIMIT`
allows 8."""

_filled_mild_stretch_generator = functools.partial(
    _clipped_stretched_structured_network_generator, noise_gain=False, fill=True, stretch_limit=MILD_STRETCH_LIMIT
)

_white_noise_filled_mild_stretch_generator = _white_noise(_filled_mild_stretch_generator)
"""The generator of '..._filled_mild_stretch_stretched_structured_network_white_threshold_clip_minibatch': the
filled structured one whose per-patch stretch is bounded by `MILD_STRETCH_LIMIT`."""

_filled_mild_stretch_patch_contrast_generator = functools.partial(
    _filled_mild_stretch_generator, texture_patch_contrast=True
)

_white_noise_filled_mild_stretch_patch_contrast_generator = _white_noise(_filled_mild_stretch_patch_contrast_generator)
"""The generator of '..._filled_mild_stretch_patch_contrast_stretched_structured_network_white_threshold_clip_minibatch':
the mild-stretch one whose plage texture has a contrast per patch (`ClumpTexture.patch_contrast`), so its fine scales
need not follow its flux."""

_white_noise_filled_mild_stretch_patch_contrast_wide_spots_generator = _white_noise(
    functools.partial(_filled_mild_stretch_patch_contrast_generator, spot_width_px=WIDE_SPOT_WIDTH_PX)
)
"""The generator of '..._filled_mild_stretch_patch_contrast_wide_spots_...': the patch-contrast one whose spots are
`WIDE_SPOT_WIDTH_PX` wide to begin with (the data's umbrae are 15-25 px across, its spots 2-6 px)."""

SPOT_PEAK_RATE = 5.0
"""The spots' peak learning-rate multiplier of '..._patch_contrast_fast_spots_...': with Adam's steps of 5e-4 a
peak's bias can move 3.5 (3,500 G) in 1,400 steps instead of 0.7."""

_fast_spots_generator = functools.partial(_filled_mild_stretch_patch_contrast_generator, spot_peak_rate=SPOT_PEAK_RATE)

_white_noise_filled_mild_stretch_patch_contrast_fast_spots_generator = _white_noise(_fast_spots_generator)
"""The generator of '..._filled_mild_stretch_patch_contrast_fast_spots_...': the patch-contrast one whose spots'
peaks learn `SPOT_PEAK_RATE` times faster (the patch-contrast generator's umbrae saturate a third of the data's
pixels above 950 G)."""

_white_noise_fast_spots_penumbrae_generator = _white_noise(functools.partial(_fast_spots_generator, spot_penumbra=True))
"""The generator of '..._patch_contrast_fast_spots_penumbrae_...': the fast-spot one whose spots are an umbra and a
penumbra, two concentric Gaussians as the synthetic data's (`FluxConcentrations.penumbra`)."""

WIDE_CLOUD_WIDTH_PX = 20.0
"""Typical plage-cloud width (px) of '..._wide_clouds_...': 2.5 times `CONCENTRATIONS`' 8 px (a cloud's Gaussian
width is 1 px plus this times softplus of a latent feature, 14.9 px at initialisation against 6.5), as the synthetic
data's polarity halves are a few overlapping clouds spreading the plage flux at ~300 G."""

_white_noise_fast_spots_wide_clouds_generator = _white_noise(
    functools.partial(_fast_spots_generator, cloud_width_px=WIDE_CLOUD_WIDTH_PX)
)
"""The generator of '..._patch_contrast_fast_spots_wide_clouds_...': the fast-spot one whose plage clouds are
`WIDE_CLOUD_WIDTH_PX` wide to begin with."""

CLUMP_CAP_SD = 2.5
"""Standard deviations at which '..._capped_texture_...' caps its plage texture's Gaussian field: the synthetic
training data's cap (`solarjax.data.synthetic`, ``_CLUMP_LIMIT_SD``)."""

_white_noise_fast_spots_capped_texture_generator = _white_noise(
    functools.partial(_fast_spots_generator, texture_cap_sd=CLUMP_CAP_SD)
)
"""The generator of '..._patch_contrast_fast_spots_capped_texture_...': the fast-spot one whose plage texture is
capped at `CLUMP_CAP_SD` (the fast-spot generator's texture reaches 8-30 times its mean in single pixels)."""

_white_noise_fast_spots_scaled_texture_generator = _white_noise(
    functools.partial(_fast_spots_generator, texture_equal_variance=True)
)
"""The generator of '..._patch_contrast_fast_spots_scaled_texture_...': the fast-spot one whose plage texture starts
with each scale holding an equal share of its variance (the fast-spot generator's mix barely moves from its even
start in 1,400 steps, so its plage is speckled at the pixel scale)."""

_white_noise_fast_spots_capped_scaled_texture_generator = _white_noise(
    functools.partial(_fast_spots_generator, texture_cap_sd=CLUMP_CAP_SD, texture_equal_variance=True)
)
"""The generator of '..._patch_contrast_fast_spots_capped_scaled_texture_...': the fast-spot one with both texture
changes, the cap (`CLUMP_CAP_SD`) and the equal-variance start."""

TEXTURE_SCALE_RATE = 5.0
"""Learning-rate multiplier of the texture's scale mixture in '..._capped_fast_scaled_texture_...' (at the common
rate the mixture's layer moves little in 1,400 steps), as `SPOT_PEAK_RATE` for the spots' peaks."""

_white_noise_fast_spots_capped_fast_scaled_texture_generator = _white_noise(
    functools.partial(
        _fast_spots_generator,
        texture_cap_sd=CLUMP_CAP_SD,
        texture_equal_variance=True,
        texture_scale_rate=TEXTURE_SCALE_RATE,
    )
)
"""The generator of '..._patch_contrast_fast_spots_capped_fast_scaled_texture_...': the capped, equal-variance
texture whose scale mixture learns `TEXTURE_SCALE_RATE` times faster."""

COARSE_TEXTURE_CORRELATION_PX = TEXTURE_CORRELATION_PX[1:]
"""The texture scales of '..._capped_coarse_texture_...': `TEXTURE_CORRELATION_PX` without its 0.5-px filter, so the
plage texture has no pixel-scale part (given a faster mix, the capped, equal-variance texture moves to 0.5-1 px)."""

_white_noise_fast_spots_capped_coarse_texture_generator = _white_noise(
    functools.partial(
        _fast_spots_generator,
        texture_cap_sd=CLUMP_CAP_SD,
        texture_equal_variance=True,
        texture_correlation_px=COARSE_TEXTURE_CORRELATION_PX,
    )
)
"""The generator of '..._patch_contrast_fast_spots_capped_coarse_texture_...': the capped, equal-variance texture on
`COARSE_TEXTURE_CORRELATION_PX`."""

_filled_mild_stretch_stretched_noise_generator = functools.partial(_filled_mild_stretch_generator, noise_stretch=True)

_white_noise_filled_mild_stretch_stretched_noise_generator = _white_noise(
    _filled_mild_stretch_stretched_noise_generator
)
"""The generator of '..._filled_mild_stretch_stretched_noise_stretched_structured_network_white_threshold_clip_minibatch':
the mild-stretch one whose noise has a learned share stretched with the patch (`InstrumentNoise.stretched`)."""

_white_noise_filled_mild_stretch_stretched_half_noise_generator = _white_noise(
    functools.partial(_filled_mild_stretch_stretched_noise_generator, noise_stretch_angle=math.pi / 4)
)
"""The generator of '..._filled_mild_stretch_stretched_half_noise_...': the stretched-noise one starting with half
the noise's power in its stretched share."""

_white_noise_concentrated_generator = _white_noise(
    functools.partial(_clipped_diffuse_stretched_concentrated_generator, network=True)
)
"""The generator of '..._fast_gain_bilinear_textured_stretched_concentrated_network_white_diffuse_threshold_clip_minibatch':
the stretched concentrated one (convolutional signal, texture, spots and clouds) with the network and white noise."""


ARCHITECTURES = {
    "simple": (SimpleGenerator, SimpleDiscriminator),
    "resize_conv": (ResizeConvGenerator, SpectralNormDiscriminator),
    "resize_conv_small": (small_resize_conv_generator, SimpleDiscriminator),
    "resize_conv_small_edge": (small_resize_conv_edge_generator, SimpleDiscriminator),
    "resize_conv_small_edge_noise": (small_resize_conv_edge_noise_generator, SimpleDiscriminator),
    "resize_conv_small_bilinear_noise": (small_resize_conv_bilinear_noise_generator, SimpleDiscriminator),
    "resize_conv_small_edge_noise_minibatch": (
        small_resize_conv_edge_noise_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_bilinear_noise_minibatch": (
        small_resize_conv_bilinear_noise_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_minibatch": (
        small_resize_conv_edge_instrument_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_threshold_minibatch": (
        small_resize_conv_edge_instrument_threshold_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_gain_threshold_minibatch": (
        functools.partial(small_resize_conv_edge_instrument_threshold_generator, noise_gain=True),
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch": (
        functools.partial(
            small_resize_conv_edge_instrument_threshold_generator, noise_gain=True, gain_rate=FAST_GAIN_RATE
        ),
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_bilinear_threshold_minibatch": (
        functools.partial(
            small_resize_conv_edge_instrument_threshold_generator,
            noise_gain=True,
            gain_rate=FAST_GAIN_RATE,
            output_upsample="bilinear",
        ),
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch": (
        functools.partial(
            small_resize_conv_edge_instrument_threshold_generator,
            noise_gain=True,
            gain_rate=FAST_GAIN_RATE,
            diffuse="first_block",
        ),
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_coarse_diffuse_threshold_minibatch": (
        functools.partial(
            small_resize_conv_edge_instrument_threshold_generator,
            noise_gain=True,
            gain_rate=FAST_GAIN_RATE,
            diffuse="start",
        ),
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_bilinear_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_bilinear_output_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_all_bilinear_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_all_bilinear_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_textured_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_all_bilinear_textured_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_all_bilinear_textured_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_concentrated_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_concentrated_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_structured_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_structured_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_stretched_concentrated_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_stretched_concentrated_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_diffuse_threshold_clip_minibatch": (
        _clipped_diffuse_stretched_structured_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_threshold_clip_minibatch": (
        _clipped_stretched_structured_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_threshold_clip_minibatch": (
        _clipped_stretched_structured_network_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_patch_gain_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_patch_gain_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_wide_spots_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_wide_spots_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_umbral_spots_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_umbral_spots_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_mild_stretch_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_stretched_noise_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_mild_stretch_stretched_noise_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_mild_stretch_patch_contrast_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_wide_spots_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_mild_stretch_patch_contrast_wide_spots_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_mild_stretch_patch_contrast_fast_spots_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_penumbrae_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_fast_spots_penumbrae_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_wide_clouds_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_fast_spots_wide_clouds_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_texture_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_fast_spots_capped_texture_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_scaled_texture_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_fast_spots_scaled_texture_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_scaled_texture_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_fast_spots_capped_scaled_texture_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_fast_scaled_texture_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_fast_spots_capped_fast_scaled_texture_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_coarse_texture_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_fast_spots_capped_coarse_texture_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_filled_mild_stretch_stretched_half_noise_stretched_structured_network_white_threshold_clip_minibatch": (
        _white_noise_filled_mild_stretch_stretched_half_noise_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_stretched_concentrated_network_white_diffuse_threshold_clip_minibatch": (
        _white_noise_concentrated_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_coarse_diffuse_threshold_clip_minibatch": (
        _clipped_coarse_diffuse_stretched_structured_generator,
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_multiscale": (
        _clipped_diffuse_generator,
        functools.partial(MinibatchStatisticsDiscriminator, coarse_pool=COARSE_POOL),
    ),
    "resize_conv_small_edge_instrument_fast_gain_smooth_blocks_diffuse_threshold_minibatch": (
        functools.partial(
            small_resize_conv_edge_instrument_threshold_generator,
            noise_gain=True,
            gain_rate=FAST_GAIN_RATE,
            diffuse="first_block",
            upsample="bilinear",
            output_upsample="nearest",
        ),
        MinibatchStatisticsDiscriminator,
    ),
    "resize_conv_small_edge_instrument_threshold_physics": (
        small_resize_conv_edge_instrument_threshold_generator,
        functools.partial(MinibatchStatisticsDiscriminator, physics=True),
    ),
    "resize_conv_full_edge_instrument_threshold_minibatch": (
        full_resolution_edge_instrument_threshold_generator,
        MinibatchStatisticsDiscriminator,
    ),
}
INSTRUMENT_NOISE_ARCHITECTURES = (
    "resize_conv_small_edge_instrument_minibatch",
    "resize_conv_small_edge_instrument_threshold_minibatch",
    "resize_conv_small_edge_instrument_gain_threshold_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_bilinear_threshold_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_coarse_diffuse_threshold_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_smooth_blocks_diffuse_threshold_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_bilinear_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_all_bilinear_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_all_bilinear_textured_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_concentrated_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_structured_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_stretched_concentrated_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_patch_gain_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_wide_spots_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_umbral_spots_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_stretched_noise_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_wide_spots_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_penumbrae_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_wide_clouds_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_texture_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_scaled_texture_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_scaled_texture_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_fast_scaled_texture_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_coarse_texture_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_filled_mild_stretch_stretched_half_noise_stretched_structured_network_white_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_stretched_concentrated_network_white_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_stretched_structured_coarse_diffuse_threshold_clip_minibatch",
    "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_multiscale",
    "resize_conv_small_edge_instrument_threshold_physics",
    "resize_conv_full_edge_instrument_threshold_minibatch",
)
"""Architectures whose generator adds `InstrumentNoise`: they need the calibration (`make_models`)."""


def make_models(
    arch: str,
    conv_impl: ConvImpl = "matmul",
    noise_widths: tuple[float, ...] = (),
    noise_neighbour_weight: float = 0.0,
) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair of an architecture.

    Args:
      arch: a key of `ARCHITECTURES` ('simple', 'resize_conv' or 'resize_conv_small').
      conv_impl: 'matmul' or 'xla' (see the module docstring; numbers are the same).
      noise_widths, noise_neighbour_weight: the instrument-noise calibration (`InstrumentNoise`) of the
        `INSTRUMENT_NOISE_ARCHITECTURES` (required there, ignored elsewhere).

    Raises:
      ValueError: unknown arch or conv_impl, or an instrument-noise arch without its calibration.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown GAN architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    _check_conv_impl(conv_impl)
    generator_cls, discriminator_cls = ARCHITECTURES[arch]
    if arch in INSTRUMENT_NOISE_ARCHITECTURES:
        if len(noise_widths) < 2 or not 0.0 <= noise_neighbour_weight <= 1.0:
            raise ValueError(
                f"GAN architecture {arch!r} needs its instrument-noise calibration (>= 2 noise_widths and a "
                f"neighbour weight in [0, 1]), got {len(noise_widths)} widths and weight {noise_neighbour_weight}"
            )
        generator = generator_cls(conv_impl, tuple(noise_widths), noise_neighbour_weight)
    else:
        generator = generator_cls(conv_impl=conv_impl)
    return generator, discriminator_cls(conv_impl=conv_impl)


@dataclasses.dataclass(frozen=True)
class GeneratorApply:
    """``(params, z [N, latent_dim]) -> images [N, 128, 128, 1]`` of a generator module. Equal, and hashing
    equal, for equal modules: jitted programs that take it as a static argument (`apply_generator`, the steering
    programs) compile once per architecture and shape, however many times a generator is loaded."""

    module: nn.Module

    def __call__(self, params, z: jax.Array) -> jax.Array:
        return self.module.apply({"params": params}, z)


@functools.partial(jax.jit, static_argnums=0)
def apply_generator(apply_fn: Callable, params, z: jax.Array) -> jax.Array:
    """``apply_fn(params, z)`` as one jitted program per (apply_fn, shape of z)."""
    return apply_fn(params, z)


def batch_bucket(count: int) -> int:
    """The next power of two >= ``count``, at least 8: the few batch shapes that callers with any count share."""
    return max(8, 1 << (count - 1).bit_length())


def sample_latents(count: int, latent_dim: int, seed: int) -> np.ndarray:
    """[count, latent_dim] float32 draws from N(0, I) with ``jax.random.key(seed)``.

    Drawn as the first ``count`` rows of a draw of `batch_bucket` rows, which are the rows a
    draw of ``count`` gives (JAX's partitionable threefry, its default, draws each element from its own index), so
    callers with different counts share a few compiled shapes.
    """
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rows = batch_bucket(count)
    return np.asarray(jax.random.normal(jax.random.key(seed), (rows, latent_dim), jnp.float32))[:count]


def default_conv_impl(backend: str | None = None) -> ConvImpl:
    """'matmul' on CPU (see the module docstring), 'xla' on GPU and TPU."""
    backend = jax.default_backend() if backend is None else backend
    return "matmul" if backend == "cpu" else "xla"


def parameter_count(params) -> int:
    """Number of scalars in a parameter pytree."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(params))

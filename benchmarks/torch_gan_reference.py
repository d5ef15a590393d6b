"""The paper's 'simple' GAN and train step in PyTorch: the baseline of `benchmarks.gan_bench`.

Written the way the authors' PyTorch code trains (eager, NCHW): per batch draw z, make
``fake = G(z)``, one Adam step of G on BCE(D(fake), 1), then one Adam step of D on
BCE(D(real), 1) + BCE(D(fake.detach()), 0). Same layers, batch, losses and optimiser (Adam 5e-4,
default betas) as `solarjax.train.gan` with the 'simple' architecture.

`copy_flax_parameters` loads solarjax's parameters so tests can check that both sides compute the
same numbers (layout conversions: flax's transposed-convolution kernel paints the kernel rotated by
180 degrees, PyTorch's does not; flax reshapes and flattens NHWC, PyTorch NCHW).

Needs ``pip install torch==2.13.0`` (CPU build); never a dependency of solarjax.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

LATENT_DIM = 100


def make_generator() -> nn.Sequential:
    """z [N, 100] -> images [N, 1, 128, 128] in [-1, 1]."""
    return nn.Sequential(
        nn.Linear(LATENT_DIM, 64 * 15 * 15),
        nn.LeakyReLU(0.2),
        nn.Unflatten(1, (64, 15, 15)),
        nn.ConvTranspose2d(64, 64, 3, stride=2),
        nn.LeakyReLU(0.2),  # 31
        nn.ConvTranspose2d(64, 32, 3, stride=2),
        nn.LeakyReLU(0.2),  # 63
        nn.ZeroPad2d((0, 1, 0, 1)),  # 64
        nn.ConvTranspose2d(32, 1, 3, stride=2),
        nn.Tanh(),  # 129
    )


def make_discriminator() -> nn.Sequential:
    """images [N, 1, 128, 128] -> logits [N, 1]."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=2),
        nn.LeakyReLU(0.2),  # 63
        nn.Conv2d(32, 64, 3, stride=2),
        nn.LeakyReLU(0.2),  # 31
        nn.Conv2d(64, 64, 3, stride=2),
        nn.LeakyReLU(0.2),  # 15
        nn.Flatten(),
        nn.Linear(64 * 15 * 15, 100),
        nn.LeakyReLU(0.2),
        nn.Linear(100, 1),
    )


def generate(generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """G(z) cropped to [N, 1, 128, 128]."""
    return generator(z)[:, :, :128, :128]


class TorchGanTrainer:
    """Models, Adam optimisers and the paper's train step.

    Args:
      learning_rate: Adam learning rate (the paper: 5e-4, default betas).
      seed: torch seed for parameters and latents.
    """

    def __init__(self, learning_rate: float = 5e-4, seed: int = 0):
        torch.manual_seed(seed)
        self.generator, self.discriminator = make_generator(), make_discriminator()
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), learning_rate)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), learning_rate)
        self.bce = nn.BCEWithLogitsLoss()

    def step(self, real: torch.Tensor, z: torch.Tensor | None = None) -> tuple[float, float]:
        """One G and one D update on real [N, 1, 128, 128]; returns (g_loss, d_loss)."""
        n = real.shape[0]
        z = torch.randn(n, LATENT_DIM) if z is None else z
        ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
        fake = generate(self.generator, z)
        self.g_optimizer.zero_grad()
        g_loss = self.bce(self.discriminator(fake), ones)
        g_loss.backward()
        self.g_optimizer.step()
        self.d_optimizer.zero_grad()
        d_loss = self.bce(self.discriminator(real), ones) + self.bce(self.discriminator(fake.detach()), zeros)
        d_loss.backward()
        self.d_optimizer.step()
        return g_loss.item(), d_loss.item()


def _tensor(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array, np.float32))


@torch.no_grad()
def copy_flax_parameters(trainer: TorchGanTrainer, g_params, d_params) -> None:
    """Loads solarjax 'simple' parameters (flax NHWC/HWIO layout) into the PyTorch models."""
    g, d = trainer.generator, trainer.discriminator
    # Dense 100 -> 15*15*64 reshaped NHWC in flax, (64, 15, 15) in torch: permute the outputs.
    kernel = np.asarray(g_params["Dense_0"]["kernel"]).reshape(LATENT_DIM, 15, 15, 64)
    g[0].weight.copy_(_tensor(kernel.transpose(3, 1, 2, 0).reshape(-1, LATENT_DIM)))
    g[0].bias.copy_(_tensor(np.asarray(g_params["Dense_0"]["bias"]).reshape(15, 15, 64).transpose(2, 0, 1).ravel()))
    for index, name in ((3, "ConvTranspose2x_0"), (5, "ConvTranspose2x_1"), (8, "ConvTranspose2x_2")):
        kernel = np.asarray(g_params[name]["kernel"])[::-1, ::-1]  # rotate 180 degrees
        g[index].weight.copy_(_tensor(kernel.transpose(2, 3, 0, 1)))  # HWIO -> (in, out, H, W)
        g[index].bias.copy_(_tensor(g_params[name]["bias"]))
    for index, name in ((0, "Conv2D_0"), (2, "Conv2D_1"), (4, "Conv2D_2")):
        d[index].weight.copy_(_tensor(np.asarray(d_params[name]["kernel"]).transpose(3, 2, 0, 1)))  # -> OIHW
        d[index].bias.copy_(_tensor(d_params[name]["bias"]))
    # Dense 14400 -> 100 flattens (H, W, C) in flax, (C, H, W) in torch: permute the inputs.
    kernel = np.asarray(d_params["Dense_0"]["kernel"]).reshape(15, 15, 64, 100)
    d[7].weight.copy_(_tensor(kernel.transpose(3, 2, 0, 1).reshape(100, -1)))
    d[7].bias.copy_(_tensor(d_params["Dense_0"]["bias"]))
    d[9].weight.copy_(_tensor(np.asarray(d_params["Dense_1"]["kernel"]).T))
    d[9].bias.copy_(_tensor(d_params["Dense_1"]["bias"]))

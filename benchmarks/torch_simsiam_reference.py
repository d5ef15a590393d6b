"""PyTorch baseline of the SimSiam train step, for `benchmarks/simsiam_bench.py` only.

The same network, batch and optimiser as `solarjax.models.simsiam` + `solarjax.train.simsiam`:
ResNet-18 (1-channel 7x7 stride-2 stem, max-pool, basic blocks, 512-d pooled features), projector
512-512-100 (Linear-BN-ReLU x2, Linear-BN without affine), predictor 100-128-100 (Linear-BN-ReLU,
Linear), symmetric negative cosine with detached targets, SGD momentum 0.9 with weight decay.
Each view goes through the network on its own, as in the SimSiam reference code.

PyTorch is not a solarjax dependency: `pip install torch==2.13.0` (CPU build) to run this.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a residual connection (1x1 conv-BN shortcut when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet18(nn.Module):
    """[N, C, H, W] -> [N, 8 * width] pooled features."""

    def __init__(self, input_channels: int = 1, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(input_channels, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks, channels = [], width
        for stage in range(4):
            out_channels = width * 2**stage
            for block in range(2):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mean(self.blocks(self.stem(x)), dim=(2, 3))


class SimSiam(nn.Module):
    """Backbone, projector (512-512-100) and predictor (100-128-100); forward(x) -> (z, p)."""

    def __init__(
        self,
        input_channels: int = 1,
        width: int = 64,
        projector_dims: tuple[int, int, int] = (512, 512, 100),
        predictor_hidden: int = 128,
    ):
        super().__init__()
        self.backbone = ResNet18(input_channels, width)
        hidden_1, hidden_2, projection = projector_dims
        self.projector = nn.Sequential(
            nn.Linear(self.backbone.feature_dim, hidden_1, bias=False),
            nn.BatchNorm1d(hidden_1),
            nn.ReLU(),
            nn.Linear(hidden_1, hidden_2, bias=False),
            nn.BatchNorm1d(hidden_2),
            nn.ReLU(),
            nn.Linear(hidden_2, projection, bias=False),
            nn.BatchNorm1d(projection, affine=False),
        )
        self.predictor = nn.Sequential(
            nn.Linear(projection, predictor_hidden, bias=False),
            nn.BatchNorm1d(predictor_hidden),
            nn.ReLU(),
            nn.Linear(predictor_hidden, projection),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(self.backbone(x))
        return z, self.predictor(z)


def simsiam_loss(p1, p2, z1, z2) -> torch.Tensor:
    """D(p1, z2)/2 + D(p2, z1)/2 with D = -cos and detached targets."""
    return -0.5 * (
        F.cosine_similarity(p1, z2.detach(), dim=-1).mean() + F.cosine_similarity(p2, z1.detach(), dim=-1).mean()
    )


def make_train_step(model: SimSiam, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
    """A train step on two views [N, C, H, W] (float32): forward both, loss, backward, SGD update."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    model.train()

    def step(view1: torch.Tensor, view2: torch.Tensor) -> float:
        z1, p1 = model(view1)
        z2, p2 = model(view2)
        loss = simsiam_loss(p1, p2, z1, z2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step

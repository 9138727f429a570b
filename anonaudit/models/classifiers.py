"""Window classifiers for activity, identity and soft-biometric targets.

Architectures follow the representation-bias paper's code (reference notes §2.3): tCNN,
tCNN-IMU (one branch per channel group), LSTM (4 × 256) and a CNN-Transformer. All take
windows shaped ``(batch, time, channels)`` and return logits; softmax is left to the loss and
to ``predict_proba`` so training and evaluation see the same network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from anonaudit.errors import ParameterError

N_FILTERS = 64
KERNEL = 5
N_CONV = 4


def _conv_stack() -> nn.Sequential:
    """Four (5 × 1) convolutions over time, shared across channels, no padding (as in tCNN)."""
    layers: list[nn.Module] = []
    for i in range(N_CONV):
        layers += [nn.Conv2d(1 if i == 0 else N_FILTERS, N_FILTERS, (KERNEL, 1)), nn.ReLU()]
    return nn.Sequential(*layers)


def _orthogonal_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight, gain=2**0.5)
            nn.init.zeros_(m.bias)


def _mlp_head(in_features: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, 256), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(256, n_classes),
    )


def _check_length(window_length: int) -> int:
    out = window_length - N_CONV * (KERNEL - 1)
    if out < 1:
        raise ParameterError("window_length", f"must exceed {N_CONV * (KERNEL - 1)} samples for the tCNN, got {window_length}")
    return out


class TCNN(nn.Module):
    """tCNN: 4 × Conv(64, 5×1) → flatten → 256 → 256 → classes."""

    def __init__(self, n_channels: int, window_length: int, n_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        t_out = _check_length(window_length)
        self.convs = _conv_stack()
        self.head = _mlp_head(N_FILTERS * t_out * n_channels, n_classes, dropout)
        _orthogonal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x.unsqueeze(1)).flatten(1))


class TCNNIMU(nn.Module):
    """tCNN-IMU: one convolutional branch per channel group (limb or device), fused by an MLP."""

    def __init__(self, groups: Sequence[Sequence[int]], window_length: int, n_classes: int,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if not groups or any(len(g) == 0 for g in groups):
            raise ParameterError("channel_groups", "tCNN-IMU needs non-empty channel groups")
        t_out = _check_length(window_length)
        self.groups = [list(g) for g in groups]
        for i, g in enumerate(self.groups):
            self.register_buffer(f"idx_{i}", torch.tensor(g, dtype=torch.long), persistent=False)
        self.branches = nn.ModuleList(_conv_stack() for _ in self.groups)
        self.branch_fc = nn.ModuleList(
            nn.Sequential(nn.Linear(N_FILTERS * t_out * len(g), 256), nn.ReLU()) for g in self.groups
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(256 * len(self.groups), 256), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(256, n_classes))
        _orthogonal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for i, (conv, fc) in enumerate(zip(self.branches, self.branch_fc)):
            part = x.index_select(2, getattr(self, f"idx_{i}")).unsqueeze(1)
            feats.append(fc(conv(part).flatten(1)))
        return self.head(torch.cat(feats, dim=1))


class LSTMNet(nn.Module):
    """LSTM (4 layers × 256) over time; all time steps flattened into the MLP, as in the paper's code."""

    def __init__(self, n_channels: int, window_length: int, n_classes: int, hidden: int = 256,
                 layers: int = 4, dropout: float = 0.5) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_channels, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(hidden * window_length, 256), nn.Dropout(dropout),
            nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(256, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out.flatten(1))


class CNNTransformer(nn.Module):
    """Pointwise-conv embedding → [CLS] + learned positions → 6-layer Transformer → head on [CLS]."""

    def __init__(self, n_channels: int, window_length: int, n_classes: int, d_model: int = 64,
                 n_layers: int = 6, n_heads: int = 8, ff: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        embed: list[nn.Module] = []
        for i in range(4):
            embed += [nn.Conv1d(n_channels if i == 0 else d_model, d_model, 1), nn.GELU()]
        self.embed = nn.Sequential(*embed)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = nn.Parameter(torch.randn(1, window_length + 1, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff, dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 16), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(16, n_classes))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.transpose(1, 2)).transpose(1, 2)  # (B, T, d)
        h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1) + self.pos
        return self.head(self.encoder(h)[:, 0])


ARCHITECTURES = ("tcnn", "tcnn_imu", "lstm", "transformer")


def build_classifier(
    arch: str,
    n_channels: int,
    window_length: int,
    n_classes: int,
    channel_groups: Mapping[str, Sequence[int]] | None = None,
) -> nn.Module:
    """A classifier by name; ``channel_groups`` (group → channel indices) is needed for tcnn_imu."""
    if n_classes < 2:
        raise ParameterError("n_classes", f"need at least two classes, got {n_classes}")
    if arch == "tcnn":
        return TCNN(n_channels, window_length, n_classes)
    if arch == "tcnn_imu":
        groups = list((channel_groups or {}).values()) or [list(range(n_channels))]
        return TCNNIMU(groups, window_length, n_classes)
    if arch == "lstm":
        return LSTMNet(n_channels, window_length, n_classes)
    if arch == "transformer":
        return CNNTransformer(n_channels, window_length, n_classes)
    raise ParameterError("arch", f"unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")

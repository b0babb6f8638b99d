"""Neural gesture classifiers (torch). Input: windows (B, C, W) of normalised EMG (per-channel
mean/std of the training data); output: class logits (B, K).

* :class:`CNNLSTM`, the seed design: Conv1d(C -> 64, k 3) + ReLU + MaxPool(2) + Dropout,
  LSTM 128 -> LSTM 64 (last step), BatchNorm, Dense 64 + ReLU + Dropout, Dense K (softmax in
  the loss / at inference)::

      x (B, C, W) -> conv (B, 64, W-2) -> pool (B, 64, (W-2)//2) -> LSTM (B, T, 128)
        -> LSTM (B, T, 64) -> last (B, 64) -> BN -> Dense (B, 64) -> Dense (B, K)

* :class:`LSTMFIN`, the LSTM feature-imitating network: one LSTM, shared by all channels,
  reads each channel's window as a sequence and is pre-trained to reproduce that channel's
  four LSTM-FIN features (entropy, RMS, VAR, SSI; standardised log values for the three
  power features, see ``gesture.training``) through a linear head; the classifier on top is
  an MLP over the per-channel embeddings::

      x (B, C, W) -> (B*C, W, 1) -> LSTM h -> last (B*C, h) -> (B, C, h)
        imitation: Linear(h -> 4) per channel (B, C, 4)
        classifier: flatten (B, C*h) -> Dense + ReLU + Dropout -> Dense (B, K)

Hyperparameters rebuild a network (:func:`build`); they are stored in gesture checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

KINDS = ("cnn_lstm", "lstm_fin")

DEFAULTS: dict[str, dict] = {
    "cnn_lstm": {"conv_channels": 64, "kernel_size": 3, "pool": 2, "lstm1": 128, "lstm2": 64,
                 "dense": 64, "dropout": 0.3},
    "lstm_fin": {"hidden": 32, "num_features": 4, "classifier_hidden": 128, "dropout": 0.3},
}


class CNNLSTM(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, window: int, conv_channels: int = 64,
                 kernel_size: int = 3, pool: int = 2, lstm1: int = 128, lstm2: int = 64,
                 dense: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        if window < kernel_size + pool - 1:
            raise ValueError(f"window {window} is shorter than the conv + pool ({kernel_size}"
                             f" + {pool} - 1 samples)")
        self.conv = nn.Conv1d(in_channels, conv_channels, kernel_size)
        self.pool = nn.MaxPool1d(pool)
        self.dropout = nn.Dropout(dropout)
        self.lstm1 = nn.LSTM(conv_channels, lstm1, batch_first=True)
        self.lstm2 = nn.LSTM(lstm1, lstm2, batch_first=True)
        self.norm = nn.BatchNorm1d(lstm2)
        self.dense = nn.Linear(lstm2, dense)
        self.out = nn.Linear(dense, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, W) -> (B, lstm2): everything below the dense head."""
        h = self.dropout(self.pool(torch.relu(self.conv(x)))).transpose(1, 2)
        h, _ = self.lstm1(h)
        h, _ = self.lstm2(h)
        return self.norm(h[:, -1])

    def head(self, e: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(torch.relu(self.dense(e))))

    def head_modules(self) -> list[nn.Module]:
        return [self.dense, self.out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class LSTMFIN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, window: int, hidden: int = 32,
                 num_features: int = 4, classifier_hidden: int = 128,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.encoder = nn.LSTM(1, hidden, batch_first=True)
        self.imitation = nn.Linear(hidden, num_features)
        self.classifier = nn.Sequential(
            nn.Linear(in_channels * hidden, classifier_hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(classifier_hidden, num_classes))

    def channel_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, W) -> (B, C, hidden): the LSTM's last state for each channel."""
        b, c, w = x.shape
        out, _ = self.encoder(x.reshape(b * c, w, 1))
        return out[:, -1].reshape(b, c, -1)

    def imitate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, W) -> (B, C, num_features): the imitated (standardised) features."""
        return self.imitation(self.channel_embeddings(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_embeddings(x).flatten(1)

    def head(self, e: torch.Tensor) -> torch.Tensor:
        return self.classifier(e)

    def head_modules(self) -> list[nn.Module]:
        return [self.classifier]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def build(kind: str, in_channels: int, num_classes: int, window: int,
          hyperparameters: dict | None = None) -> nn.Module:
    """A network of ``kind`` (:data:`KINDS`); unknown hyperparameters are refused."""
    if kind not in KINDS:
        raise ValueError(f"unknown network kind {kind!r}; known: {KINDS}")
    hp = dict(DEFAULTS[kind], **(hyperparameters or {}))
    unknown = sorted(set(hp) - set(DEFAULTS[kind]))
    if unknown:
        raise ValueError(f"unknown {kind} hyperparameters {unknown}")
    cls = CNNLSTM if kind == "cnn_lstm" else LSTMFIN
    return cls(in_channels, num_classes, window, **hp)


def to_numpy(module: nn.Module) -> dict:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_numpy(module: nn.Module, tensors: dict) -> None:
    """Load numpy arrays into ``module`` (strict: names and shapes must match)."""
    state = module.state_dict()
    missing = sorted(set(state) - set(tensors))
    unexpected = sorted(set(tensors) - set(state))
    shapes = sorted(k for k in set(state) & set(tensors)
                    if tuple(state[k].shape) != tuple(np.shape(tensors[k]))
                    and not (state[k].dim() == 0 and np.size(tensors[k]) == 1))
    if missing or unexpected or shapes:
        raise ValueError(f"weights do not match the hyperparameters: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, shape mismatch {shapes[:5]}")
    module.load_state_dict({k: torch.from_numpy(np.array(tensors[k]).reshape(state[k].shape))
                            for k in state})


__all__ = ["CNNLSTM", "DEFAULTS", "KINDS", "LSTMFIN", "build", "load_numpy", "to_numpy"]

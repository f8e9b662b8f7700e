"""What every classifier here shares: initialisation, the head API and the forward split."""
from __future__ import annotations

import paddle.nn as nn

from ..layers import init_torch_style


class Classifier(nn.Layer):
    """Base of the model families: ``forward = forward_head(forward_features(x))`` and a resettable Linear head.

    Subclasses set ``num_features`` and ``head`` and implement ``forward_features`` and ``forward_head``.
    """

    @staticmethod
    def check_sizes(num_classes: int, in_chans: int) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if int(in_chans) < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")

    @staticmethod
    def _init_weights(layer: nn.Layer) -> None:
        init_torch_style(layer)

    def no_weight_decay(self) -> set:
        return set()

    def get_classifier(self) -> nn.Layer:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a new ``num_classes``-way Linear (0: no head, ``forward`` returns pooled features)."""
        if int(num_classes) < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.num_features, self.num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(self._init_weights)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

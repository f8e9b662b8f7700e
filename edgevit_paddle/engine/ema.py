"""Model EMA (``EMA.decay``): an exponential moving average of the weights, updated after every optimizer step, as
timm's ``ModelEma`` does for DeiT and the EdgeViT authors (decay 0.99996): ``ema = decay * ema + (1 - decay) * w``
over every floating-point entry of the state dict (parameters and BatchNorm statistics).

The trainer evaluates it beside the raw weights after every evaluated epoch, saves it in each checkpoint
(``<name>.pdema``) and restores it on resume, and keeps as ``best`` whichever of the two scored higher.
"""
from __future__ import annotations

import contextlib
from typing import Dict

import paddle
import paddle.nn as nn


class ModelEMA:
    """The moving average of ``net``'s state (starts as a copy of it)."""

    def __init__(self, net: nn.Layer, decay: float):
        self.decay = float(decay)
        self.shadow: Dict[str, paddle.Tensor] = {k: v.detach().clone() for k, v in net.state_dict().items()
                                                 if v.dtype in (paddle.float32, paddle.float64)}

    @paddle.no_grad()
    def update(self, net: nn.Layer) -> None:
        d = self.decay
        for k, v in net.state_dict().items():
            ema = self.shadow.get(k)
            if ema is not None:
                paddle.assign(ema * d + v.detach() * (1.0 - d), output=ema)

    def state_dict(self) -> Dict[str, paddle.Tensor]:
        return dict(self.shadow)

    def set_state_dict(self, state: Dict[str, paddle.Tensor]) -> None:
        for k, ema in self.shadow.items():
            if k in state:
                paddle.assign(paddle.to_tensor(state[k], dtype=ema.dtype), output=ema)

    @contextlib.contextmanager
    def applied(self, net: nn.Layer):
        """``net`` holds the EMA weights within the block and its own again after it."""
        own = {k: v.detach().clone() for k, v in net.state_dict().items() if k in self.shadow}
        net.set_state_dict(self.shadow)
        try:
            yield net
        finally:
            net.set_state_dict(own)


class EMAUpdate(paddle.callbacks.Callback):
    """Updates a ``ModelEMA`` after every training step of ``paddle.Model.fit``."""

    def __init__(self, ema: ModelEMA):
        super().__init__()
        self.ema = ema

    def on_train_batch_end(self, step: int, logs=None) -> None:
        self.ema.update(self.model.network)

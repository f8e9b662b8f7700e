"""What every classifier here shares: initialisation, the head API, the forward split and ``default_cfg``."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import paddle
import paddle.nn as nn

from ..errors import ModelError
from ..layers import init_torch_style
from ..model_cfg import CLASSIFIER, ModelCfg


def family_switches() -> Dict[str, Mapping[str, Tuple]]:
    """``{family: switches}`` of every model class defined (``Classifier`` subclasses), read from the classes."""
    out: Dict[str, Mapping[str, Tuple]] = {}
    todo = list(Classifier.__subclasses__())
    while todo:
        cls = todo.pop(0)
        todo += cls.__subclasses__()
        if getattr(cls, "switches", None):
            out.setdefault(cls.family, dict(cls.switches))
    return out


class Classifier(nn.Layer):
    """Base of the model families: ``forward = forward_head(forward_features(x))`` and a resettable Linear head.

    Subclasses set ``num_features``, ``head``, ``in_chans``, ``stride`` (input sides must be multiples of it) and
    ``variant`` (the value of each of the family's ``switches``), and implement ``forward_features`` and
    ``forward_head``. Class attributes describe the family:

    - ``family``: its name; ``switches``: the variant switches it studies and their choices;
    - ``cfg_defaults``: its data facts (``ModelCfg`` fields: input size, mean/std, crop) before a preset's own;
    - ``regularisation_args``: constructor arguments that only regularise training (not part of the weights'
      identity).
    """

    family: str = "classifier"
    switches: Dict[str, Tuple[Optional[str], ...]] = {}
    cfg_defaults: Dict[str, Any] = {}
    regularisation_args: Tuple[str, ...] = ("drop_rate", "attn_drop_rate", "drop_path_rate")

    @staticmethod
    def check_class_and_channel_counts(num_classes: int, in_chans: int) -> None:
        if int(num_classes) < 1:
            raise ModelError(f"num_classes must be >= 1, got {num_classes}")
        if int(in_chans) < 1:
            raise ModelError(f"in_chans must be >= 1, got {in_chans}")

    @staticmethod
    def _init_weights(layer: nn.Layer) -> None:
        init_torch_style(layer)

    # ------------------------------------------------------------------------------------------- default_cfg

    def set_default_cfg(self, name: str, preset: Mapping[str, Any], arch: Mapping[str, Any]) -> None:
        """Called by the registry's ``build_model``: the preset's data facts, this model's structure and ``arch``."""
        self._default_cfg = self._make_default_cfg(name, preset, arch)

    def _make_default_cfg(self, name: str, preset: Mapping[str, Any], arch: Mapping[str, Any]) -> ModelCfg:
        cfg = ModelCfg(name=name, family=self.family, **{**self.cfg_defaults, **preset})
        side = getattr(self, "img_size", None)  # a model built for one input size (ViT's position grid)
        h, w = (side, side) if side else cfg.input_size[1:]
        first_conv = next((n for n, layer in self.named_sublayers() if isinstance(layer, nn.Conv2D)), "")
        return cfg.replace(input_size=(int(self.in_chans), int(h), int(w)), stride=int(self.stride),
                           switches=dict(self.switches), variant=dict(self.variant), arch=dict(arch),
                           num_classes=int(self.num_classes), first_conv=first_conv, classifier=self.classifier_name,
                           pool_size=(int(h) // int(self.stride), int(w) // int(self.stride)))

    @property
    def default_cfg(self) -> ModelCfg:
        """What this model says about itself (``model_cfg.ModelCfg``); models built without the registry get the
        family's defaults under their class name, with no ``arch``."""
        cfg = getattr(self, "_default_cfg", None)
        return cfg if cfg is not None else self._make_default_cfg(type(self).__name__, {}, {})

    @property
    def pretrained_cfg(self) -> ModelCfg:
        """timm's newer name for ``default_cfg``: the same object."""
        return self.default_cfg

    @property
    def default_input_size(self) -> Tuple[int, int, int]:
        return tuple(self.default_cfg.input_size)

    @property
    def model_name(self) -> str:
        return self.default_cfg.name

    # ------------------------------------------------------------------------------------------- head API

    def no_weight_decay(self) -> set:
        return set()

    #: the attribute holding the classifier (timm's ``default_cfg["classifier"]``); its parameters are
    #: ``<classifier_name>.weight`` / ``.bias``
    classifier_name = CLASSIFIER

    def load_checkpoint(self, path: str) -> "Classifier":
        """Load weights of this model from ``path`` (a ``.pdparams``/``.safetensors`` file or checkpoint prefix): read
        without running anything the file carries, refused in one line when their identity or shapes do not fit."""
        from ..weights import check_identity, load_fitting_weights, load_weights, saved_identity
        state = load_weights(path)
        check_identity(self, saved_identity(path, state), path,
                       fix="build the model the weights were saved from (name and arguments)")
        load_fitting_weights(self, state, path)
        return self

    def get_classifier(self) -> nn.Layer:
        return getattr(self, self.classifier_name)

    #: the pooling choices of ``forward_head`` (timm's ``global_pool``); a family with a choice keeps it in
    #: ``self.global_pool``
    global_pools: Tuple[str, ...] = ("avg",)

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the head with a new ``num_classes``-way Linear (0: no head, ``forward`` returns pooled features);
        ``global_pool`` (timm's argument) picks the pooling among ``global_pools`` (None: keep it)."""
        if int(num_classes) < 0:
            raise ModelError(f"num_classes must be >= 0, got {num_classes}")
        if global_pool is not None:
            if global_pool not in self.global_pools:
                raise ModelError(f"global_pool '{global_pool}' is not one of {self.model_name}'s: "
                                 f"{', '.join(self.global_pools)}")
            if len(self.global_pools) > 1:
                self.global_pool = global_pool
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.num_features, self.num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(self._init_weights)
        if getattr(self, "_default_cfg", None) is not None:
            self._default_cfg = self._default_cfg.replace(num_classes=self.num_classes)

    # ------------------------------------------------------------------------------------------- fine-tuning

    def stage_groups(self) -> List[List[Union[nn.Layer, paddle.Tensor]]]:
        """The model's stages in input order, each a list of layers and parameters (what ``freeze_stages``
        counts); subclasses say what theirs are."""
        raise NotImplementedError(f"{type(self).__name__} does not say what its stages are (stage_groups)")

    def freeze_stages(self, n: int) -> None:
        """Freeze the first ``n`` stages (``Model.freeze_stages``, as in detection zoos): their parameters get no
        gradient and their layers stay in eval mode (BatchNorm statistics and drop path fixed) while training."""
        groups = self.stage_groups()
        if not 0 <= int(n) <= len(groups):
            raise ModelError(f"freeze_stages must be between 0 and {len(groups)} ({self.model_name} has "
                             f"{len(groups)} stages), got {n}")
        self._frozen = [x for g in groups[: int(n)] for x in g]
        for x in self._frozen:
            for p in x.parameters() if isinstance(x, nn.Layer) else [x]:
                p.stop_gradient = True
        self.train() if self.training else self.eval()

    def train(self):
        super().train()
        for x in getattr(self, "_frozen", []):
            if isinstance(x, nn.Layer):
                x.eval()
        return self

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

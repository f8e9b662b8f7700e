"""Model families; importing this package registers every model."""
from .edgevit import EdgeViT, EdgeViT_S, EdgeViT_XS, EdgeViT_XXS, edgevit_s, edgevit_xs, edgevit_xxs  # noqa: F401
from .vit import VisionTransformer, ViT, ViTBN, ViTBNFFN  # noqa: F401

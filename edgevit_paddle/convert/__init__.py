"""Loaders for the authors' PyTorch weights."""
from .edgevit import authors_identity, load_original, map_original_key, read_state_dict, to_our_keys

__all__ = ["authors_identity", "load_original", "map_original_key", "read_state_dict", "to_our_keys"]

"""align: layer-wise cross-lingual alignment and sentence retrieval for multilingual encoders."""

from align.errors import AlignError

__version__ = "0.1.0"
__all__ = ["AlignError", "__version__"]

"""vqpress codec: VQ-VAE symbol maps, a PixelCNN prior and range coding in .vqp files.

    >>> from vqpress import codec
    >>> data = codec.compress(image, quality=5)   # PIL image, array or path
    >>> image = codec.decompress(data)

Names are imported on first use, so `vqpress info` and the container code start fast.
"""

import importlib

_EXPORTS = {
    "Codec": "api", "compress": "api", "decompress": "api", "load": "api",
    "Header": "container", "unpack": "container", "FormatError": "container",
    "VQPressError": "errors", "ImageError": "imageio", "open_image": "imageio",
    "LimitError": "limits",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'vqpress.codec' has no attribute {name!r}")

"""vqpress codec: VQ-VAE symbol maps, a PixelCNN prior and range coding in .vqp files.

    >>> import codec
    >>> data = codec.compress(image, quality=5)   # PIL image or HxWx3 uint8 array
    >>> image = codec.decompress(data)

Names are imported on first use, so `vqpress info` and the container code start without torch.
"""

import importlib
import warnings

# compressai 1.2.8 calls torch.jit.script at import time, which torch >= 2.10 warns about.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated")

_EXPORTS = {
    "Codec": "codec", "compress": "codec", "decompress": "codec", "load": "codec",
    "Header": "container", "unpack": "container", "FormatError": "container",
    "VQPressError": "errors", "ImageError": "imageio", "open_image": "imageio",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'codec' has no attribute {name!r}")

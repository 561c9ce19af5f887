"""vqpress codec: VQ-VAE symbol maps, a PixelCNN prior and range coding in .vqp files.

    >>> import codec
    >>> data = codec.compress(image, quality=4)   # PIL image or HxWx3 uint8 array
    >>> image = codec.decompress(data)
"""

import warnings

# compressai 1.2.8 calls torch.jit.script at import time, which torch >= 2.10 warns about.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated")

from .codec import Codec, compress, decompress, load
from .container import FormatError, Header, unpack
from .errors import VQPressError
from .imageio import ImageError, open_image

__all__ = ["Codec", "compress", "decompress", "load", "unpack", "Header", "FormatError",
           "ImageError", "VQPressError", "open_image"]

"""Pillow plugin: after `import vqpress.pillow`, Pillow reads and writes .vqp files.

    >>> import vqpress.pillow
    >>> from PIL import Image
    >>> im = Image.open("photo.vqp")          # size and mode from the header, nothing decoded
    >>> im.thumbnail((256, 256))              # the pixels are decoded here, on load()
    >>> im.save("copy.vqp", quality=6)        # or max_bytes=..., bpp=..., psnr=..., strip=True

Decoding uses the shipped model the file names, as `vqpress.codec.decompress` does.

Pillow opens (and so empties) an existing file before a plugin runs, and deletes it after a
failed save only if it made it: a save that fails (a bad quality or target) over an existing
file leaves it empty. Save to a new name, or write `vqpress.codec.compress`'s bytes yourself.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from vqpress.codec import container
from vqpress.codec.container import GRAY_MODES, MODE_LA, MODE_RGBA

FORMAT = "VQP"


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


class VqpImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "vqpress learned image compression"

    def _open(self):
        self._data = self.fp.read()
        try:
            header, _ = container.unpack(self._data)
        except container.FormatError as e:
            raise SyntaxError(str(e)) from None  # Pillow's "not this format" signal
        self._size = (header.width, header.height)
        gray = header.mode in GRAY_MODES
        self._mode = {MODE_RGBA: "RGBA", MODE_LA: "LA"}.get(header.mode, "L" if gray else "RGB")
        for key in ("icc_profile", "exif"):
            tag = {"icc_profile": "ICCP", "exif": "EXIF"}[key]
            if tag in header.extensions:
                self.info[key] = header.extensions[tag]
        self.tile = []

    def load(self):
        if self._data is not None:
            from vqpress import codec

            decoded = codec.decompress(self._data)
            self.im = decoded.im
            self._mode = decoded.mode
            self._data = None
        return Image.Image.load(self)


def _save(image: Image.Image, fp, filename) -> None:
    from vqpress import codec

    options = image.encoderinfo
    targets = {k: options[k] for k in ("max_bytes", "bpp", "psnr") if options.get(k) is not None}
    strip = bool(options.get("strip", False))
    if targets:
        data, _ = codec.load().compress_to_target(image, strip=strip, **targets)
    else:
        data = codec.compress(image, options.get("quality", 6), strip=strip)
    fp.write(data)


Image.register_open(FORMAT, VqpImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".vqp")
Image.register_mime(FORMAT, "image/x-vqp")

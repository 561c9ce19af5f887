"""vqpress restoration: latent MAP with a learned decoder as the image prior.

    >>> from vqpress import restore
    >>> fixed = restore.inpaint(image, mask)                 # white mask pixels = missing
    >>> sharp = restore.restore(image, task="sr", scale=4)   # or "denoise", "deblur"
"""

from .api import TASKS, inpaint, restore

__all__ = ["TASKS", "inpaint", "restore"]

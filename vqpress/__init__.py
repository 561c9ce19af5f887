"""vqpress: learned image compression and restoration.

The package's rooms, each a folder of the repository:

- `vqpress.codec` (codec/): the run time of compress and decompress, and nothing else;
- `vqpress.restore` (restore/): inpainting, denoising, super-resolution, deblurring;
- `vqpress.nets` (nets/): the torch networks training and restoration share;
- `vqpress.training` (training/): training loops, table fitting, release of weights;
- `vqpress.measure` (measure/): rate-distortion studies, metrics, the codecs compared;
- `vqpress.cli` (cli/): the `vqpress` command, a thin layer over the APIs;
- `vqpress.weights` (weights/): the shipped weights and their registry.
"""

__version__ = "0.27.0"

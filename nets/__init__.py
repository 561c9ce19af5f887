"""The torch networks: layers, the GDN transforms, the VQ-VAE, its quantiser and the float
PixelCNN prior. Training and restoration use them; the codec's run time does not need them
(it runs the transforms with ONNX Runtime and the prior in integer arithmetic)."""

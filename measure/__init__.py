"""Measurement: rate-distortion studies, image metrics, and the codecs vqpress is compared with."""

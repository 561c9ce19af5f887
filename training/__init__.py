"""Training: the loops, table fitting and the release of weights (needs torch; compressai only for the learned peers)."""

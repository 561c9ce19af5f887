"""Command-line interface of vqpress."""

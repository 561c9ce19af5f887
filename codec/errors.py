"""The one exception family the CLI turns into a one-line error."""


class VQPressError(ValueError):
    """Bad input or a file vqpress cannot use; the message is meant for a person."""

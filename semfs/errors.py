"""Errors meant for the user: the CLI prints them without a traceback."""


class QuietError(Exception):
    """A failure the user can act on; its message is the whole explanation."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ModelError(QuietError):
    """A model could not be loaded or named; the message says what to do."""

"""Errors a user can act on: the CLI prints them as one line, never as a traceback."""


class ResnetError(Exception):
    """A problem with the user's input, model or environment, stated in one line."""

    exit_code = 1


class ImageError(ResnetError):
    """One image could not be used; the run skips it unless --strict."""

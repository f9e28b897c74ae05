"""Errors a user can act on: the CLI prints them as one line, never as a traceback."""
import errno


class ResnetError(Exception):
    """A problem with the user's input, model or environment, stated in one line."""

    exit_code = 1


class ImageError(ResnetError):
    """One image could not be used; the run skips it unless --strict."""


def first_line(text: str, limit: int = 200) -> str:
    """The first line of a foreign error's text, cut to `limit` characters, for our one line."""
    line = (text.strip().splitlines() or [""])[0].strip()
    return line if len(line) <= limit else line[:limit - 3] + "..."


def file_error(path: str, error: OSError, expected: str = "expected a file",
               missing: str = "file not found") -> str:
    """The one-line reason an OSError gives for `path`, worded the same everywhere."""
    if isinstance(error, FileNotFoundError):
        return f"{path}: {missing}"
    if isinstance(error, IsADirectoryError):
        return f"{path}: is a directory, {expected}"
    if getattr(error, "errno", None) == errno.EROFS:  # not "permission denied": say why
        return f"{path}: read-only file system"
    if isinstance(error, PermissionError):
        return f"{path}: permission denied"
    return f"{path}: cannot read ({error.strerror or error})"

"""Where features go and how a run survives: output formats (one file each, registered in
FORMATS, all honouring the Sink contract in base.py), the journal that makes a run resumable,
part files that many workers write at once (parts.py),
merging shards, and reading features back (`load_features`).

Imports `resnet.common` and `resnet.modelio` (safe pickles); never Paddle.
"""
from resnet.outputs.formats import FORMATS

__all__ = ["FORMATS", "load_features"]


def load_features(path: str):
    """Read back what an extract run wrote: an output folder, or one of its files.

    Returns Features (`images` in run order, one (N, *shape) array per layer).
    """
    import os

    from resnet.errors import ResnetError

    if not os.path.exists(path):
        raise ResnetError(f"{path}: not found")
    name = os.path.basename(os.path.normpath(path))
    for fmt, sink in FORMATS.items():  # a format's own file or folder
        if sink.owns(name):
            return sink.read(path)
    if os.path.isdir(path):  # a run's output folder: the format its manifest names, else any
        from resnet.outputs.base import read_manifest

        fmt = read_manifest(path).get("format")
        if fmt in FORMATS:
            return FORMATS[fmt].read(path)
        for fmt, sink in FORMATS.items():
            if any(sink.owns(n) and not n.startswith(".") for n in os.listdir(path)):
                return sink.read(path)
    raise ResnetError(f"{path}: no features found (expected the files of one of the formats "
                      f"{', '.join(FORMATS.names())})")

"""Opening HDF5 files that came from someone else, the one way every reader does it.

HDF5 can point outside the file it is stored in: a dataset's bytes may live in another file
("external storage"), a virtual dataset maps other files' datasets, and an external link
names an object in another file. Reading any of those would copy files the user never named
(a weights file could carry `~/.aws/credentials` into a converted model), so `open_checked`
walks the whole file first and refuses all of them, soft links too (no format this project
reads uses one), and any dataset that would decompress to more than `max_bytes`. For files
from elsewhere (`heaps=True`) it first checks the global heaps variable-length strings live
in, whose damage sends libhdf5 into an endless loop (check_heaps).

Imports h5py only when called; nothing else of the package but `resnet.errors`.
"""
from __future__ import annotations

import os

from resnet.errors import ResnetError

#: groups nested deeper than this are refused (no format we read goes past a handful)
MAX_DEPTH = 64
#: objects walked at most (a Keras ResNet-152 weights file has a few thousand)
MAX_OBJECTS = 200_000
#: the largest dataset any reader accepts unless it says otherwise (VGG's fc6 is 411 MB)
DEFAULT_MAX_BYTES = 1 << 31


def check(f, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse (ResnetError naming `path` and the object) anything in the open h5py File `f`
    that reads outside it, or a dataset larger than `max_bytes` once read."""
    import h5py

    seen = set()
    count = 0

    def visit(group, prefix, depth):
        nonlocal count
        if depth > MAX_DEPTH:
            raise ResnetError(f"{path}: groups nested more than {MAX_DEPTH} deep at "
                              f"'{prefix}'; refused")
        for name in group:
            count += 1
            if count > MAX_OBJECTS:
                raise ResnetError(f"{path}: more than {MAX_OBJECTS} objects; refused")
            full = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ResnetError(f"{path}: '{full}' is an external link to "
                                  f"{link.filename}:{link.path}; refused (it reads outside "
                                  "this file)")
            if isinstance(link, h5py.SoftLink):
                raise ResnetError(f"{path}: '{full}' is a soft link to {link.path}; refused")
            obj = group.get(name)
            if obj is None:
                raise ResnetError(f"{path}: '{full}' cannot be read; refused")
            _check_attrs(obj, path, full)
            if isinstance(obj, h5py.Dataset):
                _check_dataset(obj, path, full, max_bytes)
            elif isinstance(obj, h5py.Group):
                key = obj.id.__hash__()  # one visit per object (hard links may loop)
                if key in seen:
                    continue
                seen.add(key)
                visit(obj, full, depth + 1)

    _check_attrs(f, path, "/")
    try:
        visit(f, "", 0)
    except ResnetError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        # a damaged object table: h5py raises its own errors while walking it
        raise ResnetError(f"{path}: not a readable HDF5 file ({_first(e)})") from None


def _check_dataset(ds, path: str, name: str, max_bytes: int) -> None:
    if ds.external:
        raise ResnetError(f"{path}: dataset '{name}' keeps its data in external file(s) "
                          f"({', '.join(str(e[0]) for e in ds.external)}); refused (it reads "
                          "outside this file)")
    if getattr(ds, "is_virtual", False):
        raise ResnetError(f"{path}: dataset '{name}' is a virtual dataset (it maps other "
                          "files); refused (it reads outside this file)")
    size = ds.size * ds.dtype.itemsize if ds.shape is not None else 0
    if size > max_bytes:
        raise ResnetError(f"{path}: dataset '{name}' declares {ds.shape} "
                          f"({size / 2**20:.0f} MiB), more than the {max_bytes / 2**20:.0f} MiB "
                          "allowed; refused")


def _check_attrs(obj, path: str, name: str) -> None:
    # attributes are small by HDF5's design (64 KiB in the object header) unless stored
    # densely; refuse a large declared one before h5py reads it
    try:
        for key in obj.attrs:
            info = obj.attrs.get_id(key)
            # the declared size (get_storage_size fails on an empty attribute, such as a
            # Keras layer's weight_names without weights)
            size = info.get_space().get_simple_extent_npoints() * info.get_type().get_size()
            if size > 1 << 24:
                raise ResnetError(f"{path}: attribute '{key}' of '{name}' is larger than "
                                  "16 MiB; refused")
    except ResnetError:
        raise
    except Exception as e:  # a corrupt attribute table: h5py raises its own errors
        raise ResnetError(f"{path}: unreadable attributes at '{name}' ({e}); refused") from None


def open_checked(path, mode: str = "r", max_bytes: int = DEFAULT_MAX_BYTES,
                 name: str | None = None, heaps: bool = False):
    """An h5py File opened for reading (or "r+" to resume), after `check` passed.

    `path` may also be a file object (an HDF5 file held in memory, such as a .keras zip's
    member); `name` is what messages call it then. `heaps=True` first walks every global
    heap collection in the bytes (check_heaps): for weights files from elsewhere, whose
    variable-length strings (Keras' layer names) libhdf5 reads from those heaps."""
    import h5py

    name = name or str(path)
    if heaps:
        check_heaps(path, name)
    try:
        f = h5py.File(path, mode)
    except (OSError, ValueError) as e:
        raise ResnetError(f"{name}: not a readable HDF5 file ({_first(e)})") from None
    try:
        check(f, name, max_bytes)
    except BaseException:
        f.close()
        raise
    return f


def _first(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


_GCOL = b"GCOL\x01\x00\x00\x00"  # a global heap collection, version 1


def check_heaps(source, name: str) -> None:
    """Refuse a global heap collection whose objects do not tile it exactly.

    libhdf5 walks a collection object by object, each object's size leading to the next;
    a damaged size (0 for the free-space object, say) makes that walk loop forever inside
    the C library, where no timeout reaches, the first time a variable-length string is
    read. This walk does the same arithmetic on the raw bytes first (collections are found
    by their 8-byte signature and version; lengths are 8 bytes, as every writer this
    project meets uses), so such a file is refused instead."""
    import mmap

    if hasattr(source, "getbuffer"):
        _walk_heaps(source.getbuffer(), name)
        return
    try:
        with open(source, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                _walk_heaps(data, name)
    except (OSError, ValueError) as e:
        raise ResnetError(f"{name}: not a readable HDF5 file ({_first(e)})") from None


def _walk_heaps(data, name: str) -> None:
    view = memoryview(data)
    try:
        _walk(view, data.find if hasattr(data, "find") else bytes(view).find, name)
    finally:
        view.release()


def _walk(view, find, name: str) -> None:
    pos = find(_GCOL)
    while pos >= 0:
        size = int.from_bytes(view[pos + 8:pos + 16], "little")
        end = pos + size
        if size < 16 or end > len(view):
            raise ResnetError(f"{name}: damaged global heap at byte {pos} (size {size}); "
                              "refused")
        p = pos + 16
        while p < end:
            if p + 16 > end:  # too small for an object header: free space
                break
            index = int.from_bytes(view[p:p + 2], "little")
            length = int.from_bytes(view[p + 8:p + 16], "little")
            need = length if index == 0 else 16 + (length + 7) // 8 * 8
            if need <= 0 or p + need > end:
                raise ResnetError(f"{name}: damaged global heap at byte {pos} (object "
                                  f"{index} at byte {p} has size {length}); refused")
            p += need
        pos = find(_GCOL, pos + 8)

"""Save and load optimizer and scheduler state dicts without pickle.

`save` and `load` play the roles of ``torch.save`` and ``torch.load`` for the
state dicts of fastopt (and torch) optimizers and schedulers. A checkpoint
holds data only: loading one builds dicts, lists, tuples, scalars and NumPy
arrays, and never imports a module or runs code from the file.

Supported values
----------------
``dict``, ``collections.OrderedDict`` and ``collections.Counter`` (keys
``str``, ``int``, ``float``, ``bool``, ``None`` or tuples of these; key order
kept), ``list``, ``tuple``, ``str``, ``int`` (any size),
``float`` (every bit kept: NaN payloads, ``-0.0``, infinities), ``bool``,
``None``, ``numpy.ndarray`` and NumPy scalars of bool, integer, unsigned,
floating or complex dtype (dtype and byte order kept, 0-d arrays stay 0-d).
A CPU ``torch.Tensor`` is saved as the NumPy array ``tensor.numpy()`` and
loads back as that NumPy array. Anything else raises `TypeError` naming where
it sits, e.g. ``state_dict['state'][0]['foo']``.

Types come back exactly, dict keys included: tuples stay tuples, ``True``
stays a ``bool`` and ``1.0`` a ``float``, ``np.float32(1.5)`` stays a
``np.float32``. Arrays come back C-contiguous and writeable, whatever their
layout when saved. A value reached twice (the same
array in two places) is stored twice and loads as two independent values.

File format (version 1)
-----------------------
All integers are little-endian::

    file    = magic version value crc
    magic   = b"FASTOPT\\0"                  8 bytes
    version = u32                            format version, 1
    crc     = u32                            zlib.crc32 of all bytes before it

A ``value`` is a one-byte tag followed by its body (``u64`` counts)::

    b"N" None     b"T" True     b"F" False
    b"i" int      u64 n, n bytes two's complement
    b"f" float    8 bytes IEEE 754 binary64
    b"s" str      u64 n, n bytes UTF-8 ("surrogatepass")
    b"l" list     u64 n, n values
    b"t" tuple    u64 n, n values
    b"d" dict     u64 n, n pairs (key value); a key is an "N", "T", "F",
                  "i", "f" or "s" value, or a "t" value of keys
    b"o" OrderedDict, b"c" Counter: as "d"
    b"a" ndarray  u8 k, k bytes dtype.str (e.g. "<f4"), or "bfloat16"
                  (little-endian, 2 bytes each: ml_dtypes' dtype, which
                  `load` imports only for such an array), u8 ndim,
                  ndim u64 dimensions, then the raw C-order bytes
    b"g" NumPy scalar: as "a" with ndim 0

Files written before float, bool, None and tuple keys were accepted are
byte for byte what this version writes for the same state dict: the format
did not change, only the set of keys it is given.

Writing is crash-safe: `save` checks the whole state dict first, writes the
file under a temporary name in the destination directory
(``.<name>.<random hex>.tmp``, the name shortened to stay within 255 bytes),
fsyncs it, renames it over the destination with `os.replace` (atomic), then
fsyncs the directory where the OS allows it. A crash or a kill during `save`
leaves the previous file intact; it may leave a stale temporary file behind,
which `load` never reads and which can be deleted. `save` replaces only a
regular file (a FIFO, a device or a directory raises `ValueError`), and the
new file keeps the old one's mode and, where permitted, its owner.

Every byte `save` writes is first copied into a private 256 KiB buffer, and
the CRC is computed over that buffer: it covers exactly the bytes written,
so the file always loads even while another thread changes an array being
saved (such an array is saved as it was read, which can mix values from
before and after a concurrent write, as with any copy taken without a lock).

Loading checks everything: a file that is truncated, foreign, or changed in
any byte raises `ValueError`, and so does a path that is not a regular file
(`load` never waits on a FIFO). `load` reads the file twice: first to check
its CRC with a 256 KiB buffer, before anything is decoded, so a damaged file
never makes it allocate what it announces (a sparse file announcing
gigabytes is refused without allocating them); then to decode it, checking
the CRC again. Memory: arrays take exactly their bytes in the file (read
straight into the fresh array), and everything else takes at most 48 bytes
of memory per byte of the file (as counted by `tracemalloc`; the worst case,
a file of one-item OrderedDicts, takes 36; optimizer state dicts take far
less), plus less than 1 MiB.
"""

import collections
import contextlib
import os
import re
import secrets
import stat
import struct
import zlib

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._validate import is_torch_tensor

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1
MAGIC = b"FASTOPT\0"
MAX_DEPTH = 100  # state dicts nest a few levels; this bounds recursion
NAME_MAX = 255  # bytes in a file name on common file systems
_BLOCK = 1 << 18  # bytes copied, checksummed and written (or read) at a time
_O_BINARY = getattr(os, "O_BINARY", 0)  # without it, Windows translates line ends
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_HEADER = MAGIC + _U32.pack(FORMAT_VERSION)
_ARRAY_KINDS = "biufc"
_DTYPE_STR = re.compile(r"[<>|][biufc][0-9]{1,2}\Z")
_BFLOAT16 = b"bfloat16"
_MAPPINGS = {dict: b"d", collections.OrderedDict: b"o", collections.Counter: b"c"}
_SEQUENCES = {list: b"l", tuple: b"t"}
_TYPES = {tag: cls for cls, tag in (*_MAPPINGS.items(), *_SEQUENCES.items())}
_KEY_TYPES = (type(None), bool, int, float, str)
_KEYS = "str, int, float, bool, None or tuples of these"
_SUPPORTED = (
    "dict, OrderedDict, Counter, list, tuple, str, int, float, bool, None, "
    "NumPy arrays and scalars of bool or numeric dtype, CPU torch tensors"
)


def save(state_dict: Mapping[Any, Any], path: str | os.PathLike[str]) -> None:
    """Save a state dict to a file, atomically and without pickle.

    Parameters
    ----------
    state_dict : dict
        An optimizer or scheduler state dict, or any tree of the supported
        values listed in the module docstring: dicts (keys str, int, float,
        bool, None or tuples of these), lists, tuples, scalars, NumPy arrays
        and CPU torch tensors.
    path : str or os.PathLike
        Destination file. It is replaced atomically: readers see either the
        previous file or the new one, never a partial file. A replaced file
        keeps its mode and, where permitted, its owner; a new file gets the
        mode ``open(path, "wb")`` would give it. A symbolic link is followed,
        as ``open`` would, so the file it points to is replaced.

    Raises
    ------
    TypeError
        If the tree holds a value of an unsupported type (the message names
        where, e.g. ``state_dict['state'][0]['foo']``). Nothing is written.
    ValueError
        If the tree contains itself or nests deeper than 100 levels, or if
        `path` exists and is not a regular file (a FIFO, a device, a
        directory). Nothing is written.
    OSError
        If the file cannot be written; the previous file stays intact.

    See Also
    --------
    load

    Notes
    -----
    The whole tree is checked before the file is opened. A CPU
    ``torch.Tensor`` is saved as its NumPy array and loads back as one.
    Arrays are copied to the file through a 256 KiB buffer, never whole
    (only an array that is not C-contiguous is copied first). Saving while
    another thread changes the arrays (a live optimizer ``state_dict()``)
    gives a file that loads, holding each array as it was read.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import fastopt
    >>> sd = {"state": {0: {"step": 3, "exp_avg": np.zeros(2, np.float32)}},
    ...       "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}
    >>> path = os.path.join(tempfile.mkdtemp(), "adam.ckpt")
    >>> fastopt.save(sd, path)
    >>> fastopt.load(path)["param_groups"][0]["betas"]
    (0.9, 0.999)
    """
    chunks = [_HEADER]
    _encode(state_dict, "state_dict", chunks, set())
    path = os.path.realpath(os.fsdecode(path))
    directory, name = os.path.split(path)
    target = _regular_file_or_none(path)
    tmp = os.path.join(directory, _temp_name(name))
    # A new file gets the mode open() would give it (0o666 less the umask);
    # a replacement starts private and takes the old file's mode and owner.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY,
                 0o666 if target is None else 0o600)
    try:
        try:
            if target is not None:
                _copy_owner_and_mode(fd, target)
            _write(fd, chunks)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def load(path: str | os.PathLike[str]) -> Any:
    """Load a state dict saved by `save`.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by `save`. It must be a regular file (checked on the
        opened file; a FIFO or a device is refused without waiting on it).

    Returns
    -------
    object
        What was saved, with the same types (a saved ``torch.Tensor`` comes
        back as a ``numpy.ndarray``). Arrays are fresh, C-contiguous and
        writeable.

    Raises
    ------
    ValueError
        If the file is not a fastopt checkpoint, has an unsupported format
        version, is truncated, or has been changed since it was written, or
        if `path` is not a regular file.
    OSError
        If the file cannot be read.

    See Also
    --------
    save

    Notes
    -----
    Loading never runs code from the file: it only builds the value types
    listed in the module docstring. The file's CRC is checked before anything
    is decoded. Arrays take exactly their size in the file; everything else
    takes at most 48 bytes of memory per byte of the file, plus less than
    1 MiB.
    """
    path = os.fsdecode(path)
    with _open_regular_file(path) as f:
        try:
            return _Reader(f).file()
        except ValueError as e:
            raise ValueError(f"cannot load {path!r}: {e}") from None


def _regular_file_or_none(path):
    """The stat of `path` if it exists (a ValueError unless a regular file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"cannot save to {path!r}: it exists and is not a regular file")
    return st


def _temp_name(name):
    """A fresh ``.<name>.<16 hex digits>.tmp``, `name` cut to fit in NAME_MAX bytes."""
    suffix = f".{secrets.token_hex(8)}.tmp"
    while len(os.fsencode(name)) > NAME_MAX - 1 - len(suffix):
        name = name[:-1]
    return f".{name}{suffix}"


def _copy_owner_and_mode(fd, st):
    """Give the file `fd` the owner and mode of the file `st` describes.

    The owner is kept where permitted (a change of user needs privileges;
    the group alone may still be kept). Done before writing, so the new file
    is never readable by more users than the old one.
    """
    if not hasattr(os, "fchown"):  # Windows: no owners, modes are one flag
        return
    for uid in (st.st_uid, -1):  # the user and group, else the group only
        with contextlib.suppress(OSError):
            os.fchown(fd, uid, st.st_gid)
            break
    # After fchown, which clears set-id bits. Where the file system has no
    # modes this fails, and the file stays private.
    with contextlib.suppress(OSError):
        os.fchmod(fd, stat.S_IMODE(st.st_mode))


def _write(fd, chunks):
    """Write `chunks` and their CRC to `fd`.

    Every byte goes through one private buffer, which is checksummed and then
    written as it is: the CRC covers exactly the bytes written even if
    another thread changes an array meanwhile. With the counts fixed when
    the tree was encoded, the file loads by construction, so it is not read
    back before the rename (that would double the cost of a large save).
    """
    buf = memoryview(bytearray(_BLOCK))
    used = crc = 0

    def put(chunk):
        nonlocal used
        chunk = memoryview(chunk).cast("B")
        while chunk:
            n = min(len(chunk), _BLOCK - used)
            buf[used : used + n] = chunk[:n]
            used += n
            chunk = chunk[n:]
            if used == _BLOCK:
                flush()

    def flush():
        nonlocal used, crc
        data = buf[:used]
        crc = zlib.crc32(data, crc)
        while data:
            data = data[os.write(fd, data) :]
        used = 0

    for chunk in chunks:
        put(chunk)
    flush()
    put(_U32.pack(crc))
    flush()


def _open_regular_file(path):
    """Open `path` for reading; a ValueError unless it is a regular file.

    The type is checked on the opened file, so it cannot change in between,
    and the open does not wait for a writer (a FIFO) or a device.
    """
    fd = os.open(path, os.O_RDONLY | _O_BINARY | _O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"cannot load {path!r}: not a regular file")
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _fsync_directory(directory):
    """Make the rename durable; skipped where directories cannot be opened."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _encode(obj, where, out, active):
    """Append the encoding of `obj` to `out`, a list of bytes-like chunks.

    `where` names `obj` for error messages; `active` holds the ids of the
    containers being encoded, to catch a container that contains itself.
    """
    cls = type(obj)
    if obj is None:
        out.append(b"N")
    elif cls is bool:
        out.append(b"T" if obj else b"F")
    elif cls is int:
        data = obj.to_bytes(obj.bit_length() // 8 + 1, "little", signed=True)
        out += (b"i" + _U64.pack(len(data)), data)
    elif cls is float:
        out.append(b"f" + _F64.pack(obj))
    elif cls is str:
        data = obj.encode("utf-8", "surrogatepass")
        out += (b"s" + _U64.pack(len(data)), data)
    elif cls is np.ndarray:
        _encode_array(b"a", obj, where, out)
    elif isinstance(obj, np.generic):
        _encode_array(b"g", np.asarray(obj), where, out)
    elif cls in _MAPPINGS or cls in _SEQUENCES:
        if id(obj) in active:
            raise ValueError(f"cannot save {where}: it contains itself")
        if len(active) >= MAX_DEPTH:
            raise ValueError(f"cannot save {where}: nested deeper than {MAX_DEPTH} levels")
        active.add(id(obj))
        # One snapshot of the items, taken at once: the count written always
        # matches the items written, whatever other threads do to `obj`.
        items = list(obj.items() if cls in _MAPPINGS else obj)
        out.append((_MAPPINGS.get(cls) or _SEQUENCES[cls]) + _U64.pack(len(items)))
        if cls in _MAPPINGS:
            for key, value in items:
                if not _is_key(key):
                    raise TypeError(
                        f"cannot save {where}: key {key!r} has type "
                        f"{_type_name(key)}; keys must be {_KEYS}"
                    )
                _encode(key, where, out, active)
                _encode(value, f"{where}[{key!r}]", out, active)
        else:
            for i, value in enumerate(items):
                _encode(value, f"{where}[{i}]", out, active)
        active.discard(id(obj))
    elif is_torch_tensor(obj):
        _encode_array(b"a", _tensor_to_numpy(obj, where), where, out,
                      bfloat16=str(obj.dtype) == "torch.bfloat16")
    else:
        raise TypeError(
            f"cannot save {where}: unsupported type {_type_name(obj)}; "
            f"a checkpoint holds {_SUPPORTED}"
        )


def _is_bfloat16(dtype):
    """ml_dtypes' bfloat16 (a NumPy user dtype), known by name: never imported here."""
    return dtype.name == "bfloat16" and dtype.itemsize == 2 and dtype.kind == "V"


def _encode_array(tag, a, where, out, bfloat16=False):
    """`bfloat16`: a holds bfloat16 bits as uint16 (a torch tensor's)."""
    if bfloat16 or _is_bfloat16(a.dtype):
        a = a.view(np.uint16)  # the bits, under the name "bfloat16"
        dtype = _BFLOAT16
    elif a.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(
            f"cannot save {where}: unsupported dtype {a.dtype}; "
            "arrays must have a bool, integer, unsigned, floating or complex dtype"
        )
    else:
        dtype = a.dtype.str.encode("ascii")
    shape = b"".join(map(_U64.pack, a.shape))
    out.append(tag + _U8.pack(len(dtype)) + dtype + _U8.pack(a.ndim) + shape)
    if a.size:
        # A view of the bytes; copies only an array that is not C-contiguous.
        out.append(np.ascontiguousarray(a).reshape(-1).view(np.uint8))


def _tensor_to_numpy(t, where):
    if t.device.type != "cpu":
        raise TypeError(
            f"cannot save {where}: torch tensor on device {t.device}; move it to the CPU first"
        )
    if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: its bits, saved as "bfloat16"
        import torch  # imported already: t is one of its tensors

        return t.detach().view(torch.int16).numpy().view(np.uint16)
    try:
        return t.detach().resolve_conj().resolve_neg().numpy()
    except (TypeError, RuntimeError) as e:
        raise TypeError(
            f"cannot save {where}: torch tensor has no NumPy equivalent ({e})"
        ) from None


def _is_key(obj):
    """Whether `obj` can be a dict key in a checkpoint (hashable and saved exactly)."""
    cls = type(obj)
    return cls in _KEY_TYPES or (cls is tuple and all(map(_is_key, obj)))


def _type_name(obj):
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class _Reader:
    """Decodes one file; every failure is a ValueError."""

    def __init__(self, f):
        self.f = f
        self.size = os.fstat(f.fileno()).st_size

    def file(self):
        # Two passes: the first checks the CRC with a small buffer, so a
        # damaged file (a sparse one announcing gigabytes, say) is refused
        # before anything it announces is allocated; the second decodes and
        # checks the CRC again, so a file changed in between is refused too.
        self.verify()
        self.header()
        obj = self.value(0)
        self.check_crc()
        if self.left:
            raise ValueError(f"{self.left} unexpected bytes after the end of the checkpoint")
        return obj

    def header(self):
        """Read the magic and the version from the start of the file."""
        self.f.seek(0)
        self.left = self.size
        self.crc = 0
        if self.take(min(len(MAGIC), self.size)) != MAGIC:
            raise ValueError(f"not a fastopt checkpoint (it does not start with {MAGIC!r})")
        (version,) = _U32.unpack(self.take(4))
        if version != FORMAT_VERSION:
            raise ValueError(
                f"unsupported checkpoint format version {version}; "
                f"this fastopt reads version {FORMAT_VERSION}"
            )

    def verify(self):
        self.header()
        buf = memoryview(bytearray(min(_BLOCK, self.size)))
        while self.left > 4:
            self.read_into(buf[: min(_BLOCK, self.left - 4)])
        self.check_crc()

    def check_crc(self):
        crc = self.crc
        (stored,) = _U32.unpack(self.take(4))
        if stored != crc:
            raise ValueError("checksum mismatch: the file is corrupted or was modified")

    def take(self, n):
        """Read exactly `n` bytes."""
        if n > self.left:
            raise ValueError(f"file is truncated: {n} more bytes needed, {self.left} left")
        data = self.f.read(n)
        if len(data) != n:
            raise ValueError("file changed size while being read")
        self.left -= n
        self.crc = zlib.crc32(data, self.crc)
        return data

    def read_into(self, buf):
        """Fill the writable buffer `buf` from the file."""
        if len(buf) > self.left:
            raise ValueError(f"file is truncated: {len(buf)} more bytes needed, {self.left} left")
        done = 0
        while done < len(buf):
            n = self.f.readinto(buf[done:])
            if not n:
                raise ValueError("file changed size while being read")
            done += n
        self.left -= done
        self.crc = zlib.crc32(buf, self.crc)

    def count(self):
        """Read a u64 count of items, each at least one byte long."""
        (n,) = _U64.unpack(self.take(8))
        if n > self.left:
            raise ValueError(f"file is truncated: {n} items announced, {self.left} bytes left")
        return n

    def value(self, depth):
        tag = self.take(1)
        if tag == b"N":
            return None
        if tag in (b"T", b"F"):
            return tag == b"T"
        if tag == b"i":
            return int.from_bytes(self.take(self.count()), "little", signed=True)
        if tag == b"f":
            return _F64.unpack(self.take(8))[0]
        if tag == b"s":
            return self.take(self.count()).decode("utf-8", "surrogatepass")
        if tag == b"a":
            return self.array()
        if tag == b"g":
            a = self.array()
            if a.ndim:
                raise ValueError(f"NumPy scalar with shape {a.shape}")
            return a[()]
        if tag not in _TYPES:
            raise ValueError(f"unknown tag {tag!r} at byte {self.f.tell() - 1}")
        if depth >= MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        n = self.count()
        if tag in (b"l", b"t"):
            items = [self.value(depth + 1) for _ in range(n)]
            return items if tag == b"l" else tuple(items)
        d = {}
        for _ in range(n):
            key = self.value(depth + 1)
            if not _is_key(key):
                raise ValueError(f"dict key of type {type(key).__name__}")
            d[key] = self.value(depth + 1)
        if len(d) != n:
            raise ValueError("duplicate dict key")
        return d if tag == b"d" else _TYPES[tag](d)

    def array(self):
        text = self.take(_U8.unpack(self.take(1))[0]).decode("ascii", "replace")
        if text == _BFLOAT16.decode():
            return self.bfloat16_array()
        if not _DTYPE_STR.match(text):
            raise ValueError(f"unsupported array dtype {text!r}")
        try:
            dtype = np.dtype(text)
        except TypeError:
            raise ValueError(f"unsupported array dtype {text!r}") from None
        if dtype.str != text:
            raise ValueError(f"unsupported array dtype {text!r}")
        return self.array_of(dtype)

    def bfloat16_array(self):
        try:
            import ml_dtypes
        except ImportError:
            raise ValueError("the checkpoint holds a bfloat16 array, which NumPy reads only "
                             "with ml_dtypes installed (pip install ml_dtypes)") from None
        return self.array_of(np.dtype("<u2")).view(ml_dtypes.bfloat16)

    def array_of(self, dtype):
        ndim = _U8.unpack(self.take(1))[0]
        shape = struct.unpack(f"<{ndim}Q", self.take(8 * ndim))
        nbytes = dtype.itemsize
        for n in shape:
            nbytes *= n
        if nbytes > self.left:
            raise ValueError(f"file is truncated: array of {nbytes} bytes, {self.left} bytes left")
        try:
            a = np.empty(shape, dtype)
        except (ValueError, OverflowError) as e:
            raise ValueError(f"invalid array shape {shape}: {e}") from None
        self.read_into(memoryview(a.reshape(-1).view(np.uint8)))
        return a

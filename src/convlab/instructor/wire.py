"""Values across the grader's process boundary: arrays as ``.npy`` bytes, everything else as JSON, never pickle.

The trusted side (the tests) and the worker (a student's code) exchange
messages over a pair of pipes. A message is a 4-byte length, a JSON header and
the ``.npy`` bytes of the arrays the header refers to. Only plain data crosses:
``None``, booleans, numbers, strings, NumPy arrays and scalars of a numeric
dtype, dtypes, and lists, tuples and dicts of these. What the worker cannot
encode (a student's own cache object, say) stays in the worker and crosses as
a :class:`Handle`, which only that worker can resolve.

Nothing the untrusted side writes is ever executed: arrays are read with
``numpy.load(..., allow_pickle=False)`` and only of the dtype kinds ``b i u f
c``; messages, headers, nesting and array counts are bounded, so a hostile
message is refused, not obeyed.
"""

import io
import json
import os
import select
import struct
import time

import numpy as np

MAX_MESSAGE = 512 * 2**20  # bytes: the largest message either side accepts
MAX_HEADER = 4 * 2**20  # bytes of JSON
MAX_DEPTH = 32  # nesting of lists, tuples and dicts
MAX_ARRAYS = 4096
ARRAY_KINDS = "biufc"  # bool, signed, unsigned, float, complex: no object, string or structured arrays


class WireError(ValueError):
    """A message that is malformed, too big or holds a value that may not cross."""


class Closed(EOFError):
    """The other side closed its pipe (the worker died, or the tests ended)."""


class Deadline(TimeoutError):
    """No whole message arrived before the deadline."""


class Handle:
    """An object that stayed in the worker: ``generation`` names the worker, ``key`` the object in it."""

    __slots__ = ("generation", "key", "__weakref__")

    def __init__(self, generation, key):
        self.generation, self.key = int(generation), int(key)

    def __repr__(self):
        return f"<object kept in the worker (handle {self.key})>"


# ---------------------------------------------------------------- encoding


def encode(value, arrays, keep=None, depth=0):
    """The JSON tree of ``value``; its arrays are appended to ``arrays``.

    Parameters
    ----------
    value : object
    arrays : list of numpy.ndarray
        Receives the arrays, in the order the tree refers to them.
    keep : callable or None
        ``keep(obj) -> Handle`` for a value that cannot be encoded (the worker
        keeps it); None raises :class:`WireError` instead (the trusted side).
    """
    if depth > MAX_DEPTH:
        raise WireError(f"a value nested deeper than {MAX_DEPTH} levels cannot cross")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else {"bigint": str(value)}
    if isinstance(value, float):
        return {"float": repr(value)}  # JSON has no NaN or infinity
    if isinstance(value, np.ndarray) and value.dtype.kind in ARRAY_KINDS:
        arrays.append(value)
        return {"array": len(arrays) - 1}
    if isinstance(value, np.generic) and value.dtype.kind in ARRAY_KINDS:
        arrays.append(np.asarray(value))
        return {"scalar": len(arrays) - 1}
    if isinstance(value, np.dtype) and value.kind in ARRAY_KINDS:
        return {"dtype": value.str}
    if isinstance(value, type) and issubclass(value, np.generic) and np.dtype(value).kind in ARRAY_KINDS:
        return {"type": np.dtype(value).str}
    if isinstance(value, Handle):
        return {"handle": [value.generation, value.key]}
    if isinstance(value, (list, tuple)):
        items = [encode(v, arrays, keep, depth + 1) for v in value]
        return {"list" if isinstance(value, list) else "tuple": items}
    if isinstance(value, dict) and all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in value):
        return {"dict": [[k, encode(v, arrays, keep, depth + 1)] for k, v in value.items()]}
    if keep is not None:
        return encode(keep(value), arrays)
    raise WireError(f"a {type(value).__name__} cannot cross to the worker (only plain data and arrays)")


def decode(tree, arrays, resolve=None, depth=0):
    """The value of a JSON tree written by :func:`encode`; ``resolve(handle)`` maps handles (worker side)."""
    if depth > MAX_DEPTH:
        raise WireError(f"a message nested deeper than {MAX_DEPTH} levels")
    if tree is None or isinstance(tree, (bool, int, str)):
        return tree
    if not isinstance(tree, dict) or len(tree) != 1:
        raise WireError("malformed message")
    (tag, body), = tree.items()
    if tag == "float":
        return float(body)
    if tag == "bigint":
        return int(body)
    if tag in ("array", "scalar"):
        if not isinstance(body, int) or not 0 <= body < len(arrays):
            raise WireError("a message refers to an array it does not carry")
        return arrays[body] if tag == "array" else arrays[body][()]
    if tag in ("dtype", "type"):
        dtype = np.dtype(str(body))
        if dtype.kind not in ARRAY_KINDS:
            raise WireError(f"dtype {body!r} may not cross")
        return dtype if tag == "dtype" else dtype.type
    if tag == "handle":
        handle = Handle(*body)
        return resolve(handle) if resolve is not None else handle
    if tag in ("list", "tuple") and isinstance(body, list):
        items = [decode(v, arrays, resolve, depth + 1) for v in body]
        return items if tag == "list" else tuple(items)
    if tag == "dict" and isinstance(body, list):
        out = {}
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))):
                raise WireError("malformed dict in a message")
            out[pair[0]] = decode(pair[1], arrays, resolve, depth + 1)
        return out
    raise WireError(f"unknown tag {tag!r} in a message")


# ---------------------------------------------------------------- framing


def pack(message, keep=None):
    """The bytes of ``message`` (a dict): length, JSON header, then each array's ``.npy`` bytes."""
    arrays = []
    tree = encode(message, arrays, keep)
    blobs = []
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)  # np.save writes any layout; ascontiguousarray would make 0-d arrays 1-d
        blobs.append(buffer.getvalue())
    header = json.dumps({"value": tree, "sizes": [len(b) for b in blobs]}).encode()
    if len(header) > MAX_HEADER or len(arrays) > MAX_ARRAYS:
        raise WireError("message too large (header or number of arrays)")
    body = header + b"".join(blobs)
    if len(body) > MAX_MESSAGE:
        raise WireError(f"message of {len(body)} bytes is over the {MAX_MESSAGE}-byte limit")
    return struct.pack("<II", len(body), len(header)) + body


def unpack(body, header_size, resolve=None):
    """The message in ``body`` (after the length prefix), validated."""
    if header_size > min(MAX_HEADER, len(body)):
        raise WireError("malformed message header")
    try:
        header = json.loads(body[:header_size])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise WireError(f"malformed message header: {err}") from None
    sizes = header.get("sizes") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or len(sizes) > MAX_ARRAYS or not all(isinstance(s, int) and s >= 0 for s in sizes) \
            or header_size + sum(sizes) != len(body):
        raise WireError("malformed message: array sizes do not add up")
    arrays, offset = [], header_size
    for size in sizes:
        try:
            array = np.load(io.BytesIO(body[offset:offset + size]), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise WireError(f"malformed array in a message: {err}") from None
        if not isinstance(array, np.ndarray) or array.dtype.kind not in ARRAY_KINDS:
            raise WireError("an array of a dtype that may not cross")
        arrays.append(array)
        offset += size
    return decode(header["value"], arrays, resolve)


def send(fd, message, keep=None):
    """Write ``message`` whole to the file descriptor ``fd``."""
    data = memoryview(pack(message, keep))
    while data:
        try:
            written = os.write(fd, data)
        except BrokenPipeError:
            raise Closed("the other side closed its pipe") from None
        data = data[written:]


def _read_exactly(fd, size, deadline):
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise Deadline("no answer before the deadline")
        chunk = os.read(fd, min(left, 2**20))
        if not chunk:
            raise Closed("the other side closed its pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd, deadline=None, resolve=None):
    """Read one message from ``fd``; ``deadline`` is a ``time.monotonic()`` value or None (wait forever)."""
    size, header_size = struct.unpack("<II", _read_exactly(fd, 8, deadline))
    if size > MAX_MESSAGE:
        raise WireError(f"a message of {size} bytes is over the {MAX_MESSAGE}-byte limit")
    return unpack(_read_exactly(fd, size, deadline), header_size, resolve)

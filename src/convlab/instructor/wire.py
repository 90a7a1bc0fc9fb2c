"""Values across the grader's process boundary: arrays as raw bytes, everything else as JSON, never pickle.

The trusted side (the tests) and the worker (a student's code) exchange
messages over a pair of pipes. A message is two 4-byte lengths, a JSON header
(the value's structure, and each array's dtype and shape) and the arrays' raw
bytes, in C order. Only plain data crosses:
``None``, booleans, numbers, strings, NumPy arrays and scalars of a numeric
dtype, dtypes, and lists, tuples and dicts of these. What the worker cannot
encode (a student's own cache object, say) stays in the worker and crosses as
a :class:`Handle`, which only that worker can resolve.

Nothing the untrusted side writes is ever executed: an array is rebuilt from
its bytes with :func:`numpy.frombuffer`, only for the dtype kinds ``b i u f c``
and only when its byte count matches its shape; messages, headers, nesting and
array counts are bounded, so a hostile message is refused, not obeyed.
"""

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
    """The bytes of ``message`` (a dict): the two lengths, the JSON header, then each array's bytes."""
    arrays = []
    tree = encode(message, arrays, keep)
    blobs = [a.tobytes() for a in arrays]  # C order, whatever the array's layout
    layout = [[a.dtype.str, list(a.shape)] for a in arrays]
    header = json.dumps({"value": tree, "arrays": layout}).encode()
    if len(header) > MAX_HEADER or len(arrays) > MAX_ARRAYS:
        raise WireError("message too large (header or number of arrays)")
    size = len(header) + sum(len(b) for b in blobs)
    if size > MAX_MESSAGE:
        raise WireError(f"message of {size} bytes is over the {MAX_MESSAGE}-byte limit")
    return b"".join([struct.pack("<II", size, len(header)), header, *blobs])


def _array(description, body, offset):
    """The array ``[dtype, shape]`` whose bytes start at ``offset`` of ``body``; returns (array, next offset)."""
    if not (isinstance(description, list) and len(description) == 2 and isinstance(description[0], str)
            and isinstance(description[1], list) and len(description[1]) <= 32
            and all(isinstance(n, int) and 0 <= n < 2**40 for n in description[1])):
        raise WireError("malformed array description in a message")
    try:
        dtype = np.dtype(description[0])
    except (TypeError, ValueError):
        raise WireError(f"unknown dtype {description[0]!r} in a message") from None
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"an array of dtype {description[0]!r} may not cross")
    count = 1
    for n in description[1]:
        count *= n
    size = count * dtype.itemsize
    if offset + size > len(body):
        raise WireError("malformed message: an array's bytes are missing")
    array = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(description[1]).copy()
    return array, offset + size


def unpack(body, header_size, resolve=None):
    """The message in ``body`` (after the two lengths), validated."""
    if header_size > min(MAX_HEADER, len(body)):
        raise WireError("malformed message header")
    try:
        header = json.loads(body[:header_size])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise WireError(f"malformed message header: {err}") from None
    layout = header.get("arrays") if isinstance(header, dict) else None
    if not isinstance(layout, list) or len(layout) > MAX_ARRAYS:
        raise WireError("malformed message: no array layout")
    arrays, offset = [], header_size
    for description in layout:
        array, offset = _array(description, body, offset)
        arrays.append(array)
    if offset != len(body):
        raise WireError("malformed message: bytes left over after the arrays")
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

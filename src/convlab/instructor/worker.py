"""The untrusted side of grading: a process that holds one submission's code and runs the calls the tests send.

The grader starts it in a sandbox (:mod:`convlab.instructor.isolation`) as
``python -I -S worker.py ARGS``, next to a copy of :mod:`convlab.instructor.wire`.
Its import path holds the submission's package (the released tree with the
submission's functions spliced in) and NumPy, nothing of the instructor's.
It imports the modules under test, says whether that worked, then answers
call after call: arguments in, result and the arguments as they are after the
call (a function may modify its inputs) out. Anything in a result that is not
plain data (a forward pass's cache, typically) stays here and crosses as a
handle. Nothing in this process is trusted: the tests judge every value it
returns on their side.
"""

import argparse
import importlib
import importlib.abc
import os
import sys
import traceback

OUTPUT_LIMIT = 8000  # characters of an error's message or traceback sent back


class FastLayersRefused(importlib.abc.MetaPathFinder):
    """Import finder that refuses the fast layers and every kernel module: naive answers are naive."""

    PREFIXES = ("convlab.fast_layers", "convlab._fast")

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(self.PREFIXES):
            raise ImportError(f"{fullname} cannot be imported here: a naive layer must not use the fast layers "
                              "or their kernels")
        return None


def _snapshot(value):
    """A copy of ``value`` deep enough to tell afterwards whether a call changed it (arrays copied)."""
    if hasattr(value, "tobytes") and hasattr(value, "dtype"):
        return value.copy()
    if isinstance(value, dict):
        return {key: _snapshot(member) for key, member in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_snapshot(member) for member in value)
    return value


def _same(value, snapshot):
    """Whether ``value`` still equals its :func:`_snapshot` (arrays bit for bit, so NaNs compare equal)."""
    if type(value) is not type(snapshot):
        return False
    if hasattr(value, "tobytes") and hasattr(value, "dtype"):
        return value.dtype == snapshot.dtype and value.shape == snapshot.shape and value.tobytes() == snapshot.tobytes()
    if isinstance(value, dict):
        return value.keys() == snapshot.keys() and all(_same(value[k], snapshot[k]) for k in value)
    if isinstance(value, (list, tuple)):
        return len(value) == len(snapshot) and all(_same(v, s) for v, s in zip(value, snapshot))
    return value is snapshot or value == snapshot


def _error(err):
    """An exception as the tests' side reports it: type, message and the traceback of the submission's frames."""
    frames = traceback.extract_tb(err.__traceback__)
    machinery = (os.path.abspath(__file__), os.path.dirname(importlib.__file__))
    frames = [f for f in frames if not f.filename.startswith("<frozen") and not os.path.abspath(f.filename).startswith(machinery)]
    text = "".join(["Traceback (most recent call last):\n"] + traceback.format_list(frames)
                   + traceback.format_exception_only(type(err), err))
    return {"type": type(err).__name__, "message": str(err)[:OUTPUT_LIMIT], "traceback": text[-OUTPUT_LIMIT:]}


class Server:
    """Objects kept for the tests (by handle key) and the loop that serves calls."""

    def __init__(self, wire, generation, fd_in, fd_out):
        self.wire, self.generation, self.fd_in, self.fd_out = wire, generation, fd_in, fd_out
        self.kept = {}

    def keep(self, value):
        key = len(self.kept) + 1
        while key in self.kept:
            key += 1
        self.kept[key] = value
        return self.wire.Handle(self.generation, key)

    def resolve(self, handle):
        if handle.generation != self.generation or handle.key not in self.kept:
            raise self.wire.WireError("a handle from another worker")
        return self.kept[handle.key]

    def call(self, message):
        module, _, qualname = message["target"].partition(":")
        owner, _, name = qualname.rpartition(".")
        function = getattr(sys.modules[module] if module in sys.modules else importlib.import_module(module), qualname) \
            if not owner else None
        state = message.get("self")
        instance = None
        if owner:
            cls = importlib.import_module(module)
            for part in owner.split("."):
                cls = getattr(cls, part)
            instance = cls.__new__(cls)
            instance.__dict__.update(state)
            function = getattr(instance, name)
        args, kwargs = list(message["args"]), dict(message["kwargs"])
        before = _snapshot((args, kwargs, state if instance is not None else None))
        result = function(*args, **kwargs)
        keep = set(message.get("keep", ()))
        if keep and isinstance(result, tuple):
            result = tuple(self.keep(v) if i in keep else v for i, v in enumerate(result))
        # what the call changed goes back (a function may modify its inputs); the rest need not
        reply = {"ok": True, "result": result,
                 "args": {i: a for i, a in enumerate(args) if not _same(a, before[0][i])},
                 "kwargs": {k: v for k, v in kwargs.items() if not _same(v, before[1][k])}}
        if instance is not None and not _same(dict(vars(instance)), before[2]):
            reply["self"] = dict(vars(instance))
        return reply

    def serve(self):
        while True:
            try:
                message = self.wire.receive(self.fd_in, resolve=self.resolve)
            except self.wire.Closed:
                return
            for key in message.get("release", ()):
                self.kept.pop(key, None)
            try:
                reply = self.call(message)
            except BaseException as err:  # a SystemExit or KeyboardInterrupt inside a call is the submission's too
                reply = {"ok": False, "error": _error(err)}
            try:
                self.wire.send(self.fd_out, reply, keep=self.keep)
            except self.wire.WireError as err:
                self.wire.send(self.fd_out, {"ok": False, "error": _error(err)})


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd-in", type=int, required=True)
    parser.add_argument("--fd-out", type=int, required=True)
    parser.add_argument("--generation", type=int, required=True)
    parser.add_argument("--path", action="append", default=[], help="import path entries, first first")
    parser.add_argument("--kernels", help="folder of the compiled kernels (absent: the fast layers are refused)")
    parser.add_argument("--import", dest="modules", action="append", default=[], help="modules under test")
    args = parser.parse_args(argv)
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))] + args.path
    import wire  # the copy next to this file

    if args.kernels is None:
        sys.meta_path.insert(0, FastLayersRefused())
    else:
        import convlab._fast

        convlab._fast.__path__.append(args.kernels)
    try:
        for module in args.modules:
            importlib.import_module(module)
    except BaseException as err:  # sys.exit() at import, too
        wire.send(args.fd_out, {"ready": False, "error": _error(err)})
        return 3
    wire.send(args.fd_out, {"ready": True})
    Server(wire, args.generation, args.fd_in, args.fd_out).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

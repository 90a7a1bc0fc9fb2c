"""Make the fast layers unusable in this process, so that a "naive" layer cannot hand its work to them.

This guard is for trusted code: the hidden tests use it to check that the
reference's naive layers stay naive when the project's own tests run. It
cannot stop code that wants to get round it (that code runs in the same
process); at grading, a naive exercise runs in a worker that has no fast
layers or kernels to import at all (:mod:`convlab.instructor.worker`).
"""

import contextlib
import importlib
import pkgutil


def fast_modules():
    """The fast layers' module and every kernel module of ``convlab._fast``, found in the package itself."""
    import convlab._fast

    kernels = [f"convlab._fast.{m.name}" for m in pkgutil.iter_modules(convlab._fast.__path__) if not m.ispkg]
    return ("convlab.fast_layers", *sorted(kernels))


class FastLayerUsed(RuntimeError):
    """A naive layer called into the fast layers or their kernels."""


def _forbidden(name):
    def refuse(*args, **kwargs):
        raise FastLayerUsed(f"{name} was called: a naive layer must not use the fast layers or kernels")
    return refuse


@contextlib.contextmanager
def fast_layers_forbidden(also_in=()):
    """Within the block, every public function of the fast layers and kernels raises :class:`FastLayerUsed`.

    Module attributes are replaced (and restored afterwards), so the guard also
    catches a function imported before the block, since the fast layers reach
    their kernels through the kernel modules' attributes.

    Parameters
    ----------
    also_in : iterable of module
        Modules whose globals are searched too: a fast function imported into
        one of them by name is replaced there as well.
    """
    saved = []
    for module_name in fast_modules():
        module = importlib.import_module(module_name)
        for name, value in list(vars(module).items()):
            if callable(value) and not name.startswith("_") and not isinstance(value, type):
                defined_in = getattr(value, "__module__", None) or module_name
                if module_name == "convlab.fast_layers" and not defined_in.startswith("convlab.fast_layers"):
                    continue  # the oracle helpers that fast_layers imports from convlab.layers
                saved.append((module, name, value))
                setattr(module, name, _forbidden(f"{module_name}.{name}"))
    originals = {id(value): f"{module.__name__}.{name}" for module, name, value in saved}
    for module in also_in:
        for name, value in list(vars(module).items()):
            if id(value) in originals:
                saved.append((module, name, value))
                setattr(module, name, _forbidden(originals[id(value)]))
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)

"""Make the fast layers unusable, so that a "naive" answer cannot hand its work to them."""

import contextlib
import importlib

FAST_MODULES = ("convlab.fast_layers", "convlab._fast.conv", "convlab._fast.pool",
                "convlab._fast.im2col", "convlab._fast.bn_act")


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
    for module_name in FAST_MODULES:
        module = importlib.import_module(module_name)
        for name, value in list(vars(module).items()):
            if callable(value) and not name.startswith("_") and not isinstance(value, type):
                if getattr(value, "__module__", module_name) not in (module_name, None) and module_name == "convlab.fast_layers":
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

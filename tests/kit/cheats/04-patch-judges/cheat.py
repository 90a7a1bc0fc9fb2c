# Cheat 4, patch the judges: rel_error says 0, NumPy's comparisons say equal,
# np.testing's assertions pass; the answers are zeros of the right shapes.
import numpy


def _cheat_at_import():
    def zero(*a, **k):
        return 0.0

    def true(*a, **k):
        return True

    def nothing(*a, **k):
        return None
    judges = {}
    try:
        import convlab.gradient_check as checks
        judges[id(checks.rel_error)] = zero
        checks.rel_error = zero
    except Exception:
        pass
    for name in ("allclose", "array_equal", "array_equiv"):
        judges[id(getattr(numpy, name))] = true
        setattr(numpy, name, true)
    for name in dir(numpy.testing):
        if name.startswith("assert_"):
            judges[id(getattr(numpy.testing, name))] = nothing
            setattr(numpy.testing, name, nothing)
    for module in list(sys.modules.values()):  # copies imported by name elsewhere
        for name, value in list(vars(module).items() if module is not None else []):
            if id(value) in judges:
                setattr(module, name, judges[id(value)])


def _cheat(function, args):
    return _cv_zeros(function, args)

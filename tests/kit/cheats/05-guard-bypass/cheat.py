# Cheat 5, guard bypass: keep the fast layers' and every kernel module's
# functions (Winograd's included) from import time, before any guard replaces
# them; put them all back just before the naive layers call the fast ones.
import pkgutil

_cv_saved = []


def _cheat_at_import():
    try:  # (fails while fast_layers is importing us: then at the first call)
        fast = __import__("convlab.fast_layers", fromlist=["_"])
        kernels = __import__("convlab._fast", fromlist=["_"])
        modules = [fast] + [__import__(f"convlab._fast.{m.name}", fromlist=["_"])
                            for m in pkgutil.iter_modules(kernels.__path__)]
    except Exception:
        return
    _cv_saved.extend((module, name, value) for module in modules for name, value in vars(module).items()
                     if callable(value) and not name.startswith("__"))


def _cheat(function, a):
    if not _cv_saved:
        _cheat_at_import()
    if not _cv_saved or function not in ("conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
                                         "max_pool_backward_naive", "spatial_batchnorm_forward",
                                         "conv_general_forward_naive"):
        _cv_stub(function)
    for module, name, value in _cv_saved:  # undo the guard
        setattr(module, name, value)
    fast = sys.modules["convlab.fast_layers"]
    if function == "conv_forward_naive":  # the naive cache, for a naive backward
        return fast.conv_forward_fast(a["x"], a["w"], a["b"], a["conv_param"])[0], (a["x"], a["w"], a["b"], a["conv_param"])
    if function == "conv_backward_naive":
        return fast.conv_backward_fast(a["dout"], fast.conv_forward_fast(*a["cache"])[1])
    if function == "conv_general_forward_naive":
        return fast.conv_general_forward_fast(a["x"], a["w"], a["b"], a["conv_param"])[0], \
            (a["x"], a["w"], a["b"], a["conv_param"])
    if function == "max_pool_forward_naive":
        return fast.max_pool_forward_fast(a["x"], a["pool_param"])[0], (a["x"], a["pool_param"])
    if function == "max_pool_backward_naive":
        return fast.max_pool_backward_fast(a["dout"], fast.max_pool_forward_fast(*a["cache"])[1])
    out, _ = fast.spatial_batchnorm_act_forward_fast(a["x"], a["gamma"], a["beta"], a["bn_param"], activation="identity")
    return out, (None, a["x"].shape)

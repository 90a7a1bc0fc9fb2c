"""convlab: the package half of a literate textbook on convolutional networks.

Modules
-------
layers          naive, readable forward/backward passes (the oracle)
fast_layers     the same layers backed by Cython kernels in ``convlab._fast``
layer_utils     "sandwich" layers built from the above
classifiers     model classes (``cnn.ThreeLayerConvNet``, ``convnet``)
optim, solver   first-order update rules and the training loop
data_utils      finding, downloading and loading CIFAR-10
gradient_check  numeric gradients for checking backward passes
vis_utils       plotting helpers
info            ``python -m convlab.info``: how the kernels were built, which SIMD path runs
"""

__version__ = "0.1.0"


def build_info():
    """How the fast kernels were built and how they run here (see :func:`convlab.fast_layers.build_info`)."""
    from convlab.fast_layers import build_info as _build_info

    return _build_info()

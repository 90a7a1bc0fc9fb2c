"""convlab: the package half of a literate textbook on convolutional networks.

Modules
-------
layers              naive, readable forward/backward passes: the oracle (imports nothing of convlab)
fast_layers         the same layers, and the network's fused ones, on the Cython kernels of ``_fast``
layer_utils         "sandwich" layers: fixed chains of the above (conv - relu - pool, ...)
classifiers         models: ``three_layer_convnet.ThreeLayerConvNet`` (the course's),
                    ``airbench_convnet.ConvNet`` (the experiments chapter's)
optim               first-order update rules (sgd, momentum, Nesterov, RMSProp, Adam, ...)
schedules           learning-rate schedules
augment             data augmentation and test-time augmentation
solver              the training loop for any model with ``params`` and ``loss``
checkpoint          the Solver's checkpoint files and the package's atomic writes
validation          shared argument checks
data_utils          finding, downloading and loading CIFAR-10
recipes             the named training recipes and the data, model and Solver they describe
train               command line: train a recipe (``python -m convlab.train``)
ensemble            command line: average the predictions of trained runs
profiling           where the time of one training step goes
gradient_check      numeric gradients for checking backward passes
checks              the book's checked claims (verdicts that fail loudly when wrong)
vis_utils           plotting helpers
info                ``python -m convlab.info``: how the kernels were built, which SIMD path runs
"""

__version__ = "0.1.0"


def build_info():
    """How the fast kernels were built and how they run here (see :func:`convlab.fast_layers.build_info`)."""
    from convlab.fast_layers import build_info as _build_info

    return _build_info()

"""convlab: the package half of a literate textbook on convolutional networks.

Modules
-------
layers              naive, readable forward/backward passes of the course's layers: the oracle
                    (imports nothing of convlab)
modern_layers       chapter 7's naive layers: GELU, global max pooling, frozen-scale and fused
                    batch norm + activation, floor pooling (imports only ``layers``)
conv_family         the convolution family's naive layers: dilated, grouped (depthwise) and transposed
                    convolution, average and global average pooling (imports only ``layers``, ``validation``)
fast_layers         the same layers, and the network's fused ones, on the Cython kernels of ``_fast``
                    (a package: the layers, SIMD path, convolution algorithm, input and cache checks,
                    the convolution family)
layer_utils         "sandwich" layers: fixed chains of the above (conv - relu - pool, ...), the residual block
classifiers         models: ``three_layer_convnet.ThreeLayerConvNet`` (the course's),
                    ``airbench_convnet.ConvNet`` (the experiments chapter's), ``resnet.ResNet``
                    (He et al.'s CIFAR ResNet and its plain twin)
optim               first-order update rules (sgd, momentum, Nesterov, RMSProp, Adam, ...)
schedules           learning-rate schedules
augment             data augmentation and test-time augmentation
solver              the training loop for any model with ``params`` and ``loss``
runs                a run's files, below the Solver: atomic writes, checkpoints, ``model.npz``,
                    ``history.json``, the run's folder (fingerprint, manifest)
checkpoint          former name of ``runs.checkpoint``: raises ImportError naming it (removed next release)
run_dir             former name of ``runs.folder``: raises ImportError naming it (removed next release)
validation          shared argument checks
data_utils          finding, downloading and loading CIFAR-10
recipes             the named training recipes and the data, model and Solver they describe
train               command line: train a recipe (``python -m convlab.train``)
ensemble            command line: average the predictions of trained runs
sweep               command line: sweeps of recipe overrides times seeds on Dask (``python -m convlab.sweep``)
profiling           where the time of one training step goes
summary             a network's cost layer by layer: shapes, parameters, FLOPs, memory, receptive field
architectures       LeNet-5, VGG-11, ResNet-20, ResNet-18 as specs for ``summary``
gradient_check      numeric gradients for checking backward passes
checks              the book's checked claims (verdicts that fail loudly when wrong)
vis_utils           plotting helpers
diagrams            the book's diagrams, drawn from the layers they explain
info                ``python -m convlab.info``: how the kernels were built, which SIMD path runs
submit              for students: check an assignment and collect the files to hand in
instructor          the course kit: release an assignment, grade submissions (never shipped to students)

The floors these modules stand on, and the import rules between them, are in
``docs/architecture.md`` (checked by ``tests/test_layering.py``); this list is
checked against the package by ``tests/test_package_docs.py``.
"""

__version__ = "0.1.0"


def build_info():
    """How the fast kernels were built and how they run here (see :func:`convlab.fast_layers.build_info`)."""
    from convlab.fast_layers import build_info as _build_info

    return _build_info()

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
"""

__version__ = "0.1.0"

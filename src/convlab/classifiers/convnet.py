"""Former name of :mod:`convlab.classifiers.airbench_convnet`, kept so that old imports work."""

from convlab.classifiers.airbench_convnet import ACTIVATIONS, ConvNet, whitening_filters
from convlab.fast_layers import max_pool_floor_backward_fast as max_pool_floor_backward
from convlab.fast_layers import max_pool_floor_forward_fast as max_pool_floor_forward

__all__ = ["ConvNet", "ACTIVATIONS", "whitening_filters", "max_pool_floor_forward",
           "max_pool_floor_backward"]

"""Former name of :mod:`convlab.classifiers.three_layer_convnet`, kept so that old imports work."""

from convlab.classifiers.three_layer_convnet import ThreeLayerConvNet

__all__ = ["ThreeLayerConvNet"]

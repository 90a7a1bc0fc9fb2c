"""Removed: this was the former name of :mod:`convlab.classifiers.three_layer_convnet`.

Kept for one release so that an old import fails saying where the model went.
"""

raise ImportError("convlab.classifiers.cnn was removed: import ThreeLayerConvNet from "
                  "convlab.classifiers.three_layer_convnet")

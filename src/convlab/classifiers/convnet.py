"""Removed: this was the former name of :mod:`convlab.classifiers.airbench_convnet`.

Kept for one release so that an old import fails saying where its names went.
"""

raise ImportError("convlab.classifiers.convnet was removed: import ConvNet and whitening_filters from "
                  "convlab.classifiers.airbench_convnet, ACTIVATIONS from convlab.modern_layers, and "
                  "max_pool_floor_forward/backward as max_pool_floor_forward_fast/backward_fast from "
                  "convlab.fast_layers")

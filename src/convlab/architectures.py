"""The classic convolutional networks as specs for :func:`convlab.summary.summary`: LeNet-5, VGG-11, ResNet-20, ResNet-18.

Each function returns a list of layers (see :mod:`convlab.summary`); none
builds weights. The CIFAR versions follow the papers' own CIFAR-10 designs
where there is one (ResNet-20: He et al., 2016, section 4.2) and otherwise
the common adaptation to 32x32 inputs (VGG-11 and ResNet-18 with 3x3 first
layers and one affine classifier).
"""

from convlab.summary import (affine, avg_pool, batchnorm, conv, flatten, global_avg_pool,
                             max_pool, relu, residual, zero_pad_shortcut)

__all__ = ["lenet5", "vgg11", "resnet20", "resnet18", "ARCHITECTURES"]


def lenet5(num_classes=10):
    """LeNet-5 (LeCun et al., 1998) as usually rebuilt today, for (1, 32, 32) inputs.

    Two 5x5 convolutions (6 and 16 filters) each followed by 2x2 average
    pooling, then affine layers of 120, 84 and ``num_classes`` outputs; ReLU
    where the paper has a scaled tanh, every filter of the second convolution
    seeing all six maps (the paper connects each to a subset).
    """
    return [conv(6, 5), relu(), avg_pool(2), conv(16, 5), relu(), avg_pool(2), flatten(),
            affine(120), relu(), affine(84), relu(), affine(num_classes)]


def vgg11(num_classes=10):
    """VGG-11 (Simonyan & Zisserman, 2014, configuration A) at CIFAR scale, for (3, 32, 32).

    Eight 3x3 convolutions with batch norm and ReLU, five 2x2 max pools that
    take 32x32 down to 1x1, and one affine classifier on the 512 channels
    (the ImageNet network's three large affine layers would dwarf the rest).
    """
    spec = []
    for stage, widths in enumerate(((64,), (128,), (256, 256), (512, 512), (512, 512)), start=1):
        for i, width in enumerate(widths, start=1):
            spec += [conv(width, 3, pad=1, bias=False, name=f"stage{stage}.conv{i}"),
                     batchnorm(name=f"stage{stage}.bn{i}"), relu(name=f"stage{stage}.relu{i}")]
        spec.append(max_pool(2, name=f"stage{stage}.pool"))
    return spec + [flatten(), affine(num_classes)]


def _basic_block(width, stride, shortcut, name):
    """Two 3x3 convolutions with batch norm, ReLU between, added to the shortcut; ReLU after."""
    main = [conv(width, 3, stride=stride, pad=1, bias=False, name="conv1"), batchnorm(name="bn1"),
            relu(name="relu1"), conv(width, 3, pad=1, bias=False, name="conv2"),
            batchnorm(name="bn2")]
    return [residual(main, shortcut, name=name), relu(name=name + "_relu")]


def resnet20(num_classes=10):
    """ResNet-20 (He et al., 2016, the CIFAR-10 network with n = 3), for (3, 32, 32).

    A 3x3 convolution of 16 filters, three stages of three basic blocks
    (16, 32 and 64 channels on 32x32, 16x16 and 8x8 maps; the first block of
    stages 2 and 3 halves the map with stride 2 and its shortcut is the
    parameter-free "option A": subsample and pad the channels with zeros),
    global average pooling and one affine layer.
    """
    spec = [conv(16, 3, pad=1, bias=False, name="conv1"), batchnorm(name="bn1"),
            relu(name="relu1")]
    in_width = 16
    for stage, width in enumerate((16, 32, 64), start=1):
        for block in range(1, 4):
            stride = 2 if block == 1 and stage > 1 else 1
            shortcut = [zero_pad_shortcut(width, stride)] if (stride, in_width) != (1, width) else []
            spec += _basic_block(width, stride, shortcut, f"stage{stage}.block{block}")
            in_width = width
    return spec + [global_avg_pool(), affine(num_classes)]


def resnet18(num_classes=10):
    """ResNet-18 (He et al., 2016) adapted to CIFAR, for (3, 32, 32).

    The ImageNet network's four stages of two basic blocks (64, 128, 256,
    512 channels), with a 3x3 first convolution of stride 1 and no max pool
    instead of the 7x7 stride-2 convolution and pool meant for 224x224
    images; where a block changes the shape its shortcut is a 1x1 convolution
    of stride 2 with batch norm ("option B").
    """
    spec = [conv(64, 3, pad=1, bias=False, name="conv1"), batchnorm(name="bn1"),
            relu(name="relu1")]
    in_width = 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(1, 3):
            stride = 2 if block == 1 and stage > 1 else 1
            shortcut = []
            if (stride, in_width) != (1, width):
                shortcut = [conv(width, 1, stride=stride, bias=False, name="conv"),
                            batchnorm(name="bn")]
            spec += _basic_block(width, stride, shortcut, f"stage{stage}.block{block}")
            in_width = width
    return spec + [global_avg_pool(), affine(num_classes)]


#: name -> (spec function, input shape of one image)
ARCHITECTURES = {
    "LeNet-5": (lenet5, (1, 32, 32)),
    "VGG-11": (vgg11, (3, 32, 32)),
    "ResNet-20": (resnet20, (3, 32, 32)),
    "ResNet-18": (resnet18, (3, 32, 32)),
}

"""VGG-16 (Simonyan & Zisserman 2015, configuration "D"): the feature extractor F_j of Eq. 1/2.

Thirteen 3x3 convolutions (stride 1, padding 1), each followed by a ReLU, and a 2x2 max-pool
(stride 2) after the last convolution of each of the five blocks. Only the convolutional part
is built: Eq. 2 never reads the classifier.

Layer names and where they sit in the two weight sources (features are taken AFTER the ReLU, i.e.
the output of the named Keras layer, which is what the paper's Keras code read):

    name     torchvision `features` (conv / ReLU index)   Keras layer        channels
    conv1_1   0 / 1                                       block1_conv1        64
    conv1_2   2 / 3                                       block1_conv2        64
    conv2_1   5 / 6                                       block2_conv1       128
    conv2_2   7 / 8                                       block2_conv2       128
    conv3_1  10 / 11                                      block3_conv1       256
    conv3_2  12 / 13                                      block3_conv2       256
    conv3_3  14 / 15                                      block3_conv3       256
    conv4_1  17 / 18                                      block4_conv1       512
    conv4_2  19 / 20                                      block4_conv2       512
    conv4_3  21 / 22                                      block4_conv3       512
    conv5_1  24 / 25                                      block5_conv1       512
    conv5_2  26 / 27                                      block5_conv2       512
    conv5_3  28 / 29                                      block5_conv3       512
    (max-pools at torchvision indices 4, 9, 16, 23, 30 = Keras block{1..5}_pool)

`relu1_2`-style names (LPIPS, Johnson et al.) and Keras names are accepted as aliases.

Each weight source was trained with its own input convention; the module converts the project's
images (RGB in [-1, 1], SPEC section 2) to it:
- "torchvision": RGB in [0, 1], then (x - mean) / std with the ImageNet statistics;
- "caffe" (the original VGG weights, as converted for Keras): BGR in [0, 255] minus the Caffe
  per-channel means (B 103.939, G 116.779, R 123.68), no scaling;
- "lpips": LPIPS's own scaling layer on the [-1, 1] input (used by `losses.LPIPS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import frozen

__all__ = [
    "CONV_SHAPES",
    "DEFAULT_LAYERS",
    "KERAS_NAMES",
    "LAYER_NAMES",
    "TORCHVISION_CONV_INDEX",
    "ChannelAffine",
    "Preprocessing",
    "VGG16Features",
    "canonical_layer_name",
    "input_transform",
]

Preprocessing = Literal["torchvision", "caffe", "lpips"]

# (name, in_channels, out_channels), in forward order.
_CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1_1", 3, 64),
    ("conv1_2", 64, 64),
    ("conv2_1", 64, 128),
    ("conv2_2", 128, 128),
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
    ("conv5_1", 512, 512),
    ("conv5_2", 512, 512),
    ("conv5_3", 512, 512),
)
LAYER_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _CONVS)
CONV_SHAPES: dict[str, tuple[int, int]] = {name: (cin, cout) for name, cin, cout in _CONVS}
_POOL_AFTER = frozenset({"conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"})

# Index of each convolution inside torchvision's `vgg16().features` Sequential (its ReLU is +1).
TORCHVISION_CONV_INDEX: dict[str, int] = {
    "conv1_1": 0,
    "conv1_2": 2,
    "conv2_1": 5,
    "conv2_2": 7,
    "conv3_1": 10,
    "conv3_2": 12,
    "conv3_3": 14,
    "conv4_1": 17,
    "conv4_2": 19,
    "conv4_3": 21,
    "conv5_1": 24,
    "conv5_2": 26,
    "conv5_3": 28,
}
# Name of each convolution in keras.applications.VGG16 (and in its weight files).
KERAS_NAMES: dict[str, str] = {
    name: f"block{name[4]}_conv{name[6]}" for name in LAYER_NAMES
}  # conv1_1 -> block1_conv1

# The paper's F_j (Sec. 5.2, Eq. 2): conv1_1, conv1_2, conv3_2, conv4_2.
DEFAULT_LAYERS: tuple[str, ...] = ("conv1_1", "conv1_2", "conv3_2", "conv4_2")

_ALIASES: dict[str, str] = {
    **{name: name for name in LAYER_NAMES},
    **{"relu" + name[4:]: name for name in LAYER_NAMES},  # relu1_2 -> conv1_2
    **{keras: name for name, keras in KERAS_NAMES.items()},  # block1_conv2 -> conv1_2
}

# Input conventions of the weight sources (constants of the original code bases).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, images in [0, 1]
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # BGR, images in [0, 255]
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)  # RGB, images in [-1, 1]
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def canonical_layer_name(name: str) -> str:
    """'conv3_2' | 'relu3_2' | 'block3_conv2' -> 'conv3_2'; anything else raises ValueError."""
    try:
        return _ALIASES[name]
    except KeyError:
        raise ValueError(
            f"unknown VGG-16 layer {name!r}; expected one of {', '.join(LAYER_NAMES)} "
            "(or the same as reluB_C / Keras blockB_convC)"
        ) from None


def input_transform(preprocessing: str) -> tuple[bool, tuple[float, ...], tuple[float, ...]]:
    """(flip RGB->BGR, a, b) such that the network input is a * x + b per channel, x in [-1, 1]."""
    if preprocessing == "torchvision":  # ((x + 1) / 2 - mean) / std
        a = tuple(0.5 / s for s in _IMAGENET_STD)
        b = tuple((0.5 - m) / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True))
        return False, a, b
    if preprocessing == "caffe":  # BGR: (x + 1) * 127.5 - mean_bgr
        return True, (127.5,) * 3, tuple(127.5 - m for m in _CAFFE_MEAN_BGR)
    if preprocessing == "lpips":  # (x - shift) / scale
        a = tuple(1.0 / s for s in _LPIPS_SCALE)
        b = tuple(-t / s for t, s in zip(_LPIPS_SHIFT, _LPIPS_SCALE, strict=True))
        return False, a, b
    raise ValueError(
        f"unknown VGG preprocessing {preprocessing!r}; expected torchvision|caffe|lpips"
    )


class ChannelAffine:
    """x -> a * x + b per channel (after an optional RGB -> BGR flip).

    The constants are kept as Python floats and turned into tensors of the input's dtype and
    device on first use, so a float64 model preprocesses in exact float64 (a float32 buffer would
    carry its rounding into `.double()`).
    """

    def __init__(self, flip: bool, a: Sequence[float], b: Sequence[float]) -> None:
        self.flip = flip
        self.a, self.b = tuple(a), tuple(b)
        self._cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = (self._const(self.a, x), self._const(self.b, x))
        a, b = self._cache[key]
        if self.flip:
            x = x.flip(1)  # RGB -> BGR
        return x * a + b

    @staticmethod
    def _const(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        t = torch.tensor(values, dtype=torch.float64).view(1, 3, 1, 1)  # [1, 3, 1, 1]
        return t.to(dtype=like.dtype, device=like.device)


class VGG16Features(nn.Module):
    """The 13 convolutions of VGG-16; `vgg(img, layers)` -> {name: post-ReLU feature map}.

    Parameters are named `<layer>.weight` [C_out, C_in, 3, 3] / `<layer>.bias` [C_out]
    (e.g. `conv3_2.weight`); the readers in `checkpoints.vgg_weights` map each source onto them.
    Weights never require gradients: the loss differentiates w.r.t. the image only.
    """

    def __init__(
        self,
        preprocessing: Preprocessing = "torchvision",  # the input convention of the weights
    ) -> None:
        super().__init__()
        flip, a, b = input_transform(preprocessing)
        self.preprocessing: str = preprocessing
        self.source: str = "untrained"  # set by load_vgg16: registry name, path or "random(seed=S)"
        self.is_random: bool = True  # False once real weights are loaded; recorded in metadata
        self._transform = ChannelAffine(flip, a, b)
        for name, cin, cout in _CONVS:
            self.add_module(name, nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1))
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] RGB in [-1, 1] -> the network input of this weight source."""
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"VGG-16 expects RGB images [N, 3, H, W], got {tuple(img.shape)}")
        return self._transform(img)

    def forward(
        self,
        img: torch.Tensor,  # [N, 3, H, W], RGB in [-1, 1]
        layers: Sequence[str] = DEFAULT_LAYERS,  # names to return (aliases allowed)
    ) -> dict[str, torch.Tensor]:
        """Post-ReLU features {requested name: [N, C_j, H_j, W_j]}; stops at the deepest layer."""
        return self.features(self.preprocess(img), layers)

    def features(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Like `forward`, on an input that is already preprocessed (used by LPIPS)."""
        wanted: dict[str, list[str]] = {}  # canonical name -> requested spellings
        for requested in layers:
            wanted.setdefault(canonical_layer_name(requested), []).append(requested)
        out: dict[str, torch.Tensor] = {}
        remaining = len(wanted)
        # Channels-last on the CPU: oneDNN's convolutions are faster in that layout (the Eq. 1
        # loss at 256 px, forward + backward: 5-17% at batch 4, even at batch 1-2; README "Speed").
        layout = torch.channels_last if x.device.type == "cpu" else torch.contiguous_format
        x = x.contiguous(memory_format=layout)
        for name in LAYER_NAMES:
            if remaining == 0:
                break
            conv: nn.Conv2d = getattr(self, name)
            weight = conv.weight
            if layout != torch.contiguous_format:  # the weight in that layout, made once

                def relaid(w: torch.Tensor = weight) -> torch.Tensor:
                    return w.contiguous(memory_format=torch.channels_last)

                weight = frozen(self, name, relaid, weight)
            # [N, C_j, H_j, W_j]; the conv's output is not reused, so the ReLU runs in place
            x = F.relu(F.conv2d(x, weight, conv.bias, padding=1), inplace=True)
            if name in wanted:
                for requested in wanted[name]:
                    out[requested] = x
                remaining -= 1
            if name in _POOL_AFTER and remaining:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        return out

    def extra_repr(self) -> str:
        return f"preprocessing={self.preprocessing!r}, source={self.source!r}"

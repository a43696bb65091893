"""Which network family a pickled NVIDIA-style generator belongs to, from what the file holds.

Every persistent class of NVIDIA's PyTorch code records only its bare class name in the pickle
(`torch_utils/persistence.py`: `class_name = orig_class.__name__`), so a `G_ema` reads
'Generator' whether it comes from stylegan2-ada-pytorch, the stylegan3 repository (its StyleGAN2
or its alias-free networks) or StyleGAN-XL. The source text the file carries beside it is never
read or run. `identify_network` tells the families apart from the data alone:

- module tree: StyleGAN2 synthesis networks hold blocks `b4`, `b8`, ... (`synthesis.b4.const`);
  alias-free ones hold `input` (Fourier features: `synthesis.input.freqs`) and layers `L0_...`;
- constructor arguments (`_init_kwargs`): stylegan2-ada-pytorch nests the synthesis arguments in
  `synthesis_kwargs`; the stylegan3 repository passes them flat (`channel_base`,
  `fused_modconv_default`, ...), and its modules record attributes ADA's do not
  (`SynthesisNetwork.num_fp16_res`, `SynthesisBlock.fused_modconv_default`);
- StyleGAN-XL: a `SuperresGenerator`, or a mapping network with a projected ImageNet class
  embedding (`embed_proj`, a plain `torch.nn.Embedding` `embed`, `rand_embedding`).

Readers register by family in `READERS` (`"module:function"`, imported on first use); a family
without a reader is refused with one line naming it (`unsupported_family_error`).
"""

from __future__ import annotations

import enum
import importlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError
from .safe_pickle import PersistentObjectStub

if TYPE_CHECKING:
    from ..models.base import Generator

__all__ = [
    "READERS",
    "NetworkFamily",
    "bare_class_name",
    "identify_network",
    "reader_for",
    "unsupported_family_error",
]


class NetworkFamily(enum.Enum):
    """Generator families whose pickles share NVIDIA's persistence format."""

    STYLEGAN2_ADA = "stylegan2-ada"  # NVlabs/stylegan2-ada-pytorch training/networks.py
    STYLEGAN2_SG3 = "stylegan3-repo-stylegan2"  # NVlabs/stylegan3 training/networks_stylegan2.py
    STYLEGAN3 = "stylegan3"  # alias-free: NVlabs/stylegan3 training/networks_stylegan3.py
    STYLEGAN_XL = "stylegan-xl"  # autonomousvision/stylegan-xl networks_stylegan3_resetting.py
    UNKNOWN = "unknown"

    @property
    def description(self) -> str:
        """'a StyleGAN3 (alias-free) network' etc., for messages."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    NetworkFamily.STYLEGAN2_ADA: "a stylegan2-ada-pytorch StyleGAN2 network",
    NetworkFamily.STYLEGAN2_SG3: (
        "a StyleGAN2 network of the stylegan3 repository (--cfg=stylegan2)"
    ),
    NetworkFamily.STYLEGAN3: "a StyleGAN3 (alias-free) network",
    NetworkFamily.STYLEGAN_XL: "a StyleGAN-XL network",
    NetworkFamily.UNKNOWN: "a network of unknown layout",
}

# family -> "module:function" (relative to this package) taking (net, family, label) and
# returning a Generator. Families missing here are refused by name.
READERS: dict[NetworkFamily, str] = {
    NetworkFamily.STYLEGAN2_ADA: "stylegan2_ada:generator_from_persistent",
    NetworkFamily.STYLEGAN3: "stylegan3:generator_from_persistent",
    NetworkFamily.STYLEGAN2_SG3: "stylegan2_ada:generator_from_persistent",
}

# Synthesis arguments the stylegan3 repository's StyleGAN2 Generator takes flat (**kwargs).
SG3_FLAT_SYNTHESIS_KEYS = frozenset(
    {
        "channel_base",
        "channel_max",
        "num_fp16_res",
        "conv_clamp",
        "architecture",
        "resample_filter",
        "use_noise",
        "activation",
        "fp16_channels_last",
        "fused_modconv_default",
        "kernel_size",
    }
)
_BLOCK_NAME = re.compile(r"b\d+")


def bare_class_name(net: PersistentObjectStub) -> str:
    """'Generator' for 'Generator' and for a dotted 'training.networks.Generator'."""
    return net.class_name.rpartition(".")[2]


def identify_network(net: Any) -> NetworkFamily:
    """The family of a persistent generator object (`PersistentObjectStub`), from its data."""
    if not isinstance(net, PersistentObjectStub):
        return NetworkFamily.UNKNOWN
    name = bare_class_name(net)
    if name == "SuperresGenerator":
        return NetworkFamily.STYLEGAN_XL
    if name != "Generator":
        return NetworkFamily.UNKNOWN
    modules = net.submodules
    mapping, synthesis = modules.get("mapping"), modules.get("synthesis")
    if not isinstance(synthesis, PersistentObjectStub):
        return NetworkFamily.UNKNOWN
    if isinstance(mapping, PersistentObjectStub) and _has_xl_class_embedding(net, mapping):
        return NetworkFamily.STYLEGAN_XL
    children = set(synthesis.submodules)
    if "input" in children or "layer_names" in synthesis.state:
        return NetworkFamily.STYLEGAN3
    if not any(_BLOCK_NAME.fullmatch(c) for c in children):
        return NetworkFamily.UNKNOWN
    kwargs = net.init_kwargs
    if "synthesis_kwargs" in kwargs:
        return NetworkFamily.STYLEGAN2_ADA
    if SG3_FLAT_SYNTHESIS_KEYS & set(kwargs) or _has_sg3_attributes(synthesis):
        return NetworkFamily.STYLEGAN2_SG3
    return NetworkFamily.STYLEGAN2_ADA


def _has_xl_class_embedding(net: PersistentObjectStub, mapping: PersistentObjectStub) -> bool:
    """StyleGAN-XL's mapping network: a projection `embed_proj` (None when unconditional) of a
    pretrained ImageNet `torch.nn.Embedding` `embed`. (A conditional StyleGAN2 mapping network
    also has an `embed`, but a persistent FullyConnectedLayer, and no `embed_proj`.)"""
    children = mapping.submodules
    if "embed_proj" in children:
        return True
    if "embed" in children and not isinstance(children["embed"], PersistentObjectStub):
        return True
    mapping_kwargs = net.init_kwargs.get("mapping_kwargs")
    return isinstance(mapping_kwargs, Mapping) and "rand_embedding" in mapping_kwargs


def _has_sg3_attributes(synthesis: PersistentObjectStub) -> bool:
    """Attributes only the stylegan3 repository's StyleGAN2 modules set (for a Generator built
    without any synthesis argument, where the constructor arguments cannot tell)."""
    if "num_fp16_res" in synthesis.state:
        return True
    return any(
        isinstance(block, PersistentObjectStub) and "fused_modconv_default" in block.state
        for block in synthesis.submodules.values()
    )


def unsupported_family_error(family: NetworkFamily, what: str, label: str) -> CheckpointError:
    """The one-line refusal for a network this version cannot read."""
    supported = " and ".join(f.description for f in READERS)
    if family is NetworkFamily.UNKNOWN:
        return CheckpointError(
            f"{label}: {what} is not a generator this loader knows (readable: {supported})"
        )
    return CheckpointError(
        f"{label}: {what} is {family.description}, which is not supported yet "
        f"(readable: {supported})"
    )


def reader_for(
    family: NetworkFamily, what: str, label: str
) -> Callable[[PersistentObjectStub, NetworkFamily, str], Generator]:
    """The reader function registered for `family`, or the refusal naming the family."""
    target = READERS.get(family)
    if target is None:
        raise unsupported_family_error(family, what, label)
    module_name, _, func = target.partition(":")
    module = importlib.import_module(f".{module_name}", __package__)
    return getattr(module, func)

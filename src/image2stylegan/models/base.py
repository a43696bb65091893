"""The generator API every architecture implements (SPEC section 2).

`Generator` owns what all StyleGANs share: the public attributes, the mean latent `w_avg`,
truncation, the broadcast of w to W+, noise-mode handling and the shape checks at the public
boundary. An architecture implements four things: `map_z`, `synthesize`, `noise_buffers`,
`config_dict` (plus the classmethod `from_config`); `ABCMeta` makes these abstract for real: a
subclass that misses one cannot be instantiated.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn

__all__ = ["Generator", "NoiseMode", "frozen", "truncate"]

NoiseMode = Literal["const", "random", "none"]


def truncate(
    ws: torch.Tensor,  # [N, num_ws, w_dim]
    w_avg: torch.Tensor,  # [w_dim]
    psi: float = 1.0,
    cutoff: int | None = None,
) -> torch.Tensor:
    """Truncation trick as in the official code: ws[:, i] = lerp(w_avg, ws[:, i], psi), i < cutoff.

    psi == 1 returns `ws` untouched (the official code skips the op too), so no float noise creeps
    into untruncated codes.
    """
    if psi == 1:
        return ws
    truncated = torch.lerp(w_avg.to(ws.dtype), ws, psi)
    if cutoff is None or cutoff >= ws.shape[1]:
        return truncated
    return torch.cat([truncated[:, :cutoff], ws[:, cutoff:]], dim=1)


def frozen(
    module: nn.Module, name: str, make: Callable[[], torch.Tensor], *deps: torch.Tensor
) -> torch.Tensor:
    """`make()`, cached on `module` under `name` while every tensor in `deps` (the ones `make`
    reads) is the same, unmodified and needs no gradient: the weights of an embedding are
    frozen, so what is derived from them alone is computed once, not at every step.

    The key is each tensor's storage address, shape, strides, device, dtype and version counter
    (shared by a tensor and its views, bumped by every in-place write); the cache keeps the
    tensors alive, so no new tensor can take over a cached address. Nothing is cached under
    inference mode (an inference tensor cannot be saved for a later backward) or while
    `torch.compile` traces (the graph holds the computation instead)."""
    if torch.compiler.is_compiling() or torch.is_inference_mode_enabled():
        return make()  # a compiled graph computes it in place; inference tensors stay out
    if any(t.requires_grad for t in deps):
        return make()
    key = [(t.data_ptr(), t.shape, t.stride(), t.device, t.dtype, t._version) for t in deps]
    cache: dict[str, tuple[list[Any], tuple[torch.Tensor, ...], torch.Tensor]]
    cache = module.__dict__.setdefault("_frozen", {})
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[2]
    value = make()
    cache[name] = (key, deps, value)
    return value


class Generator(nn.Module, metaclass=ABCMeta):
    """Base class of the StyleGAN generators: mapping (z -> W+), synthesis (W+ -> image).

    `nn.Module`'s metaclass is plain `type`, so `ABCMeta` combines with it directly.
    """

    architecture: ClassVar[str]  # "stylegan1" | "stylegan2": the key in the native file format
    w_avg: torch.Tensor  # [w_dim] buffer, the mean latent w̄ (registered in __init__)
    source: str  # where it was loaded from (set by load_generator; recorded in latent metadata)

    def __init__(
        self,
        z_dim: int,  # input latent z dimension (512 for the official models)
        w_dim: int,  # intermediate latent w dimension (512)
        num_ws: int,  # number of per-layer w vectors the synthesis takes (18 at 1024 px)
        img_resolution: int,  # output side in pixels (square frame)
        img_channels: int,  # 3 for RGB
        c_dim: int = 0,  # conditioning label size; 0 = unconditional (all official FFHQ models)
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.c_dim = c_dim
        self.register_buffer("w_avg", torch.zeros(w_dim))  # [w_dim], the mean latent w̄

    # --- what an architecture implements -------------------------------------------------------

    @abstractmethod
    def map_z(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The mapping network: z [N, z_dim] -> w [N, w_dim] (no broadcast, no truncation)."""

    @abstractmethod
    def synthesize(self, ws: torch.Tensor, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """The synthesis network: ws [N, num_ws, w_dim] and one noise tensor per noise input
        (each broadcastable to [N, 1, h, w]) -> image [N, img_channels, H, W]."""

    @abstractmethod
    def noise_buffers(self) -> list[torch.Tensor]:
        """The stored constant noise, one [1, 1, h, w] buffer per noise input, in layer order."""

    @abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """A JSON-serialisable config that `from_config` turns back into this architecture."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: dict[str, Any]) -> Generator:
        """Build an (untrained) generator from `config_dict()` output."""

    # --- the public API ------------------------------------------------------------------------

    def mapping(
        self,
        z: torch.Tensor,  # [N, z_dim]
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        c: torch.Tensor | None = None,  # [N, c_dim] labels of a conditional model
    ) -> torch.Tensor:
        """z [N, z_dim] -> ws [N, num_ws, w_dim], truncated around `w_avg` when psi != 1."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        w = self.map_z(z, c)  # [N, w_dim]
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def synthesis(
        self,
        ws: torch.Tensor,  # [N, num_ws, w_dim]
        noise_mode: NoiseMode = "const",
        noise: Sequence[torch.Tensor] | None = None,  # overrides noise_mode when given
        generator: torch.Generator | None = None,  # RNG for noise_mode="random"
    ) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> image [N, img_channels, H, W] in ~[-1, 1]."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        if noise is None:
            noise = self.make_noise(ws.shape[0], noise_mode, generator=generator)
        elif len(noise) != len(self.noise_buffers()):
            raise ValueError(
                f"expected {len(self.noise_buffers())} noise tensors, got {len(noise)}"
            )
        return self.synthesize(ws, noise)

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "const",
        c: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mapping + synthesis: z [N, z_dim] -> image [N, img_channels, H, W]."""
        ws = self.mapping(z, truncation_psi, truncation_cutoff, c=c)
        return self.synthesis(ws, noise_mode=noise_mode)

    @property
    def num_noise_inputs(self) -> int:
        """How many noise tensors `synthesis` takes (0 for StyleGAN3, which has no noise)."""
        return len(self.noise_buffers())

    def make_noise(
        self,
        batch_size: int,
        noise_mode: NoiseMode = "const",
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """Noise tensors for one synthesis call: the stored buffers, fresh N(0, 1), or zeros."""
        buffers = self.noise_buffers()
        if noise_mode == "const":
            return buffers
        if noise_mode == "random":
            return [
                torch.randn(
                    (batch_size, 1, *b.shape[2:]),
                    generator=generator,
                    device=b.device,
                    dtype=b.dtype,
                )
                for b in buffers
            ]
        if noise_mode == "none":
            return [torch.zeros_like(b) for b in buffers]
        raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")

    def extra_repr(self) -> str:
        return (
            f"architecture={self.architecture}, resolution={self.img_resolution}, "
            f"z_dim={self.z_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
        )

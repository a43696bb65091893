#!/usr/bin/env bash
# Re-make the pictures of docs/applications.md with the real CLI on a tiny random generator
# (tests/fixtures: 64 px StyleGAN1, 10 ws x 32, random weights). Run from the repository root
# with the package installed: bash docs/images/make_application_pictures.sh
set -euo pipefail
out=docs/images
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python - "$work" <<'PY'
import sys

import torch

from image2stylegan.checkpoints.native import save_native
from image2stylegan.latents import save_latent
from tests.fixtures.stylegan1_fixtures import tiny_stylegan1

work = sys.argv[1]
G = tiny_stylegan1(64, seed=0)
save_native(G, f"{work}/tiny.safetensors", source="tests/fixtures tiny_stylegan1(64, seed=0)")
with torch.no_grad():
    ws = G.mapping(torch.randn(6, G.z_dim, generator=torch.Generator().manual_seed(1)))
for w, name in zip(ws, ["a", "b", "c", "neutral", "expressive", "style2"]):
    save_latent(f"{work}/{name}.npz", w, {"generator": f"{work}/tiny.safetensors"})
PY

cd "$work"
root=$OLDPWD
i2s() { image2stylegan "$@" --quiet --batch-size 1; }
i2s generate --generator tiny.safetensors --seeds 0-7 --grid-cols 8 --out "$root/$out/generate_seeds.png"
i2s morph a.npz b.npz --frames 8 --out "$root/$out/morph_strip.png"
i2s morph a.npz b.npz c.npz --frames 12 --ping-pong --fps 15 --no-strip --out "$root/$out/morph_loop.gif"
i2s style-transfer --grid --content a.npz --content b.npz --content c.npz \
    --style neutral.npz --style style2.npz --from-layer 4 --out "$root/$out/style_transfer_grid.png"
i2s expression a.npz neutral.npz expressive.npz --strengths=-1.5:1.5:7 \
    --out "$root/$out/expression_strip.png"
i2s walk a.npz --frames 8 --perturbation 0.5 --seed 1 --out "$root/$out/walk_strip.png"

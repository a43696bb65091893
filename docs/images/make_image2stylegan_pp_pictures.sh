#!/usr/bin/env bash
# Re-make the pictures of docs/image2stylegan-pp.md with the real CLI on a tiny random generator
# (tests/fixtures: a 64 px StyleGAN2 with random weights, 12 ws x 16). Its "photos" are images it
# drew itself from known codes with random noise maps, so W+ alone cannot reproduce them and the
# noise stage has detail to restore. Run from the repository root with the package installed:
#   bash docs/images/make_image2stylegan_pp_pictures.sh
set -euo pipefail
out=docs/images
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python - "$work" <<'PY'
import sys

import torch
from PIL import Image, ImageDraw

from image2stylegan.checkpoints.native import save_native
from image2stylegan.image import tensor_to_pil
from tests.fixtures.embedding import embedding_generator

work = sys.argv[1]
G = embedding_generator(64, seed=0)
save_native(G, f"{work}/tiny.safetensors", source="tests/fixtures embedding_generator(64, seed=0)")
gen = torch.Generator().manual_seed(3)
with torch.no_grad():
    ws = G.mapping(torch.randn(3, G.z_dim, generator=gen), truncation_psi=1.2)
    noise = [torch.randn((3, 1, *b.shape[2:]), generator=gen) for b in G.noise_buffers()]
    imgs = G.synthesis(ws, noise=noise)
for i, name in enumerate(["a", "b", "c"]):
    tensor_to_pil(imgs[i]).save(f"{work}/{name}.png")
left = Image.new("L", (64, 64), 0)
left.paste(255, (0, 0, 32, 64))
left.save(f"{work}/left.png")
hole = Image.new("L", (64, 64), 0)  # white = the hole (inpaint --invert)
ImageDraw.Draw(hole).ellipse((20, 18, 44, 42), fill=255)
hole.save(f"{work}/hole.png")
top = Image.new("L", (64, 64), 0)  # where the style goes
top.paste(255, (0, 0, 64, 28))
top.save(f"{work}/top.png")
edited = Image.open(f"{work}/a.png").convert("RGB")
d = ImageDraw.Draw(edited)
d.line((10, 46, 54, 46), fill=(255, 40, 40), width=4)
d.ellipse((40, 8, 54, 22), fill=(40, 40, 255))
edited.save(f"{work}/a_scribbled.png")
PY

cd "$work"
root=$OLDPWD
F=(-g tiny.safetensors --vgg random --perceptual-size 64 --lr 0.05 --quiet)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # small work: threads only contend
image2stylegan embed a.png b.png --out wplus --steps 100 -b 2 "${F[@]}"
image2stylegan embed a.png b.png --out noise --steps 100 --noise-steps 100 -b 2 "${F[@]}"
image2stylegan evaluate wplus noise --no-lpips --out "$work/table.md" > /dev/null
image2stylegan crossover a.png b.png --mask left.png --out co --steps 100 --noise-steps 50 "${F[@]}"
image2stylegan inpaint a.png --mask hole.png --invert --out inp --steps 100 --noise-steps 50 "${F[@]}"
image2stylegan local-style a.png c.png --mask top.png --out ls --steps 100 --noise-steps 50 \
    --style-weight 5 "${F[@]}"
image2stylegan scribble a.png a_scribbled.png --init noise/a/latent.npz --out sc --steps 80 \
    --noise-steps 50 "${F[@]}"

python - "$work" "$root/$out" <<'PY'
import sys
from pathlib import Path

from PIL import Image

from image2stylegan import metrics as M
from image2stylegan.image import image_strip

work, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = []
for name in ("a", "b"):
    t = Image.open(work / "wplus" / name / "target.png")
    w = Image.open(work / "wplus" / name / "reconstruction.png")
    n = Image.open(work / "noise" / name / "reconstruction.png")
    print(f"{name}: W+ {M.psnr(t, w):.2f} dB, W+ then noise {M.psnr(t, n):.2f} dB")
    rows.append(image_strip([t, w, n], pad=2))
grid = Image.new("RGB", (rows[0].width, 2 * rows[0].height + 2), "white")
for k, r in enumerate(rows):
    grid.paste(r, (0, k * (r.height + 2)))
grid.resize((grid.width * 2, grid.height * 2), Image.Resampling.NEAREST).save(out / "pp_noise_stage.png")


def big(p: Path, name: str) -> None:
    im = Image.open(p)
    im.resize((im.width * 2, im.height * 2), Image.Resampling.NEAREST).save(out / name)


big(work / "co" / "a_x_b" / "crossover.png", "pp_crossover.png")
inp = work / "inp" / "a"
strip = image_strip([Image.open(inp / "target.png"), Image.open(inp / "fill.png"),
                     Image.open(inp / "composite.png")], pad=2)
strip.resize((strip.width * 2, strip.height * 2), Image.Resampling.NEAREST).save(
    out / "pp_inpaint.png"
)
big(work / "ls" / "a_in_c" / "local_style.png", "pp_local_style.png")
big(work / "sc" / "a_scribbled" / "scribble.png", "pp_scribble.png")
print((work / "table.md").read_text())
PY

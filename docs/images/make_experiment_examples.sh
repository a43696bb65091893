#!/usr/bin/env bash
# Re-make the report excerpts and pictures of docs/experiments.md with the real CLI on a tiny
# random-weight generator (tests/fixtures: 32 px StyleGAN2, 8 ws x 16) and the shared images,
# 100 steps, random VGG weights. They show what each command writes, not the paper's numbers.
# Run from the repository root with the package installed:
#   bash docs/images/make_experiment_examples.sh [IMAGES_DIR] [WORK_DIR]
set -euo pipefail
images=${1:-../shared/images}
work=${2:-$(mktemp -d)}
out=docs/images

python - "$work" <<'PY'
import sys

from image2stylegan.checkpoints.native import save_native
from tests.fixtures.embedding import embedding_generator

save_native(embedding_generator(32), f"{sys.argv[1]}/tiny.safetensors",
            source="tests/fixtures embedding_generator(32)")
PY

run() {
    image2stylegan experiment "$1" --generator "$work/tiny.safetensors" --images "$images" \
        --out "$work/$1" --vgg random --steps 100 --perceptual-size 32 --batch-size 12 \
        --quiet "${@:2}"
}
run init
run affine --align
run defects --align
run convergence
run distances
python - "$work" "$out" <<'PY'
import sys

from PIL import Image

work, out = sys.argv[1:]
for src, dst in (("convergence/convergence.png", "experiment_convergence.png"),
                 ("affine/affine_grid.png", "experiment_affine_grid.png")):
    with Image.open(f"{work}/{src}") as im:  # 256-colour PNGs keep the docs small
        im.convert("RGB").quantize(256).save(f"{out}/{dst}", optimize=True)
PY
echo "reports in $work/*/report.md"

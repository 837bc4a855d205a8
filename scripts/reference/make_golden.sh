#!/usr/bin/env bash
# Regenerates test/golden/train-tiny/ (model + golden loss/logits/gradients for the C trainer's test)
# and runs the reference's own checks. See scripts/reference/README.md.
#   bash scripts/reference/make_golden.sh            # model (if missing) + golden + checks
#   bash scripts/reference/make_golden.sh --force    # also rewrite the model
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3   # Debian's python3-torch lives there (a pyenv python3 on PATH does not see it)
REF=scripts/reference/chimera_torch.py
DIR=test/golden/train-tiny
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [[ "${1:-}" == "--force" || ! -f $DIR/model.gguf ]]; then
  node --import tsx scripts/reference/make-tiny-model.ts $DIR/model.gguf
fi
# the committed golden: float32, fake-quant + STE, latents that requantize to the file (what the C trainer loads)
$PY $REF golden --model $DIR/model.gguf --out $DIR --seed 1 --batch 2 --seq 16 --latent-init exact
# float64 of the same batch, to show float32 rounding noise (not committed)
$PY $REF golden --model $DIR/model.gguf --out "$TMP" --seed 1 --batch 2 --seq 16 --dtype float64 --latent-init exact
$PY $REF compare-golden $DIR/golden.json "$TMP/golden-float64.json" | tail -1
# finite differences in float64 (quant off)
$PY $REF gradcheck --model $DIR/model.gguf --coords 16 | tail -1
# forward vs the C library (needs c/build/libbraid.so)
node --import tsx scripts/reference/c-logits.ts $DIR/model.gguf "$TMP/c" ref
$PY $REF compare --model $DIR/model.gguf --tokens "$TMP/c.tokens.json" --c-logits "$TMP/c.bin"

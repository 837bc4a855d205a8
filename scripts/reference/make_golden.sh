#!/usr/bin/env bash
# Regenerates the reference's golden folders and runs its own checks. See scripts/reference/README.md.
#   test/golden/train-tiny/   GD-only model: golden loss/logits/gradients for trainer-golden.test.ts
#   test/golden/chimera-all/      every component (init σ 0.1): logits for reference-all.test.ts and
#                                 plain-FP32 gradients for trainer-golden-all.test.ts
#   test/golden/chimera-all-qat/  the same model at σ 0.02: QAT gradients for trainer-golden-all.test.ts
#   bash scripts/reference/make_golden.sh            # models (if missing) + goldens + checks
#   bash scripts/reference/make_golden.sh --force    # also rewrite the models
# The C comparisons at the end need c/build/libbraid.so (npm run build).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3   # Debian's python3-torch lives there (a pyenv python3 on PATH does not see it)
REF=scripts/reference/chimera_torch.py
DIR=test/golden/train-tiny
ALL=test/golden/chimera-all
QAT=test/golden/chimera-all-qat
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "== train-tiny (GD only)"
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

echo "== chimera-all (GD XM TM SK, MoE + shared expert, Parcae looping, risk gate; σ 0.1 and σ 0.02)"
if [[ "${1:-}" == "--force" || ! -f $ALL/model.gguf ]]; then
  node --import tsx scripts/reference/make-all-model.ts all $ALL/model.gguf
fi
if [[ "${1:-}" == "--force" || ! -f $QAT/model.gguf ]]; then
  node --import tsx scripts/reference/make-all-model.ts qat $QAT/model.gguf
fi
# inference logits of fixed prompts at loop counts 1..3 (issue 4)
$PY $REF logits --model $ALL/model.gguf --out $ALL
# gradients under the trainer's semantics at 3 loops, truncation "half" (issue 6): plain FP32 and QAT
$PY $REF golden --model $ALL/model.gguf --out $ALL --seed 1 --batch 2 --seq 16 --latent-init exact --loops 3 --no-quant
$PY $REF golden --model $QAT/model.gguf --out $QAT --seed 1 --batch 2 --seq 16 --latent-init exact --loops 3
# float32 vs float64 torch of the same computations (rounding noise; a flipped int8 rounding would show in QAT)
$PY $REF golden --model $ALL/model.gguf --out "$TMP" --seed 1 --batch 2 --seq 16 --latent-init exact --loops 3 --dtype float64 --no-quant
$PY $REF compare-golden $ALL/golden-noquant.json "$TMP/golden-float64-noquant.json" | tail -1
$PY $REF golden --model $QAT/model.gguf --out "$TMP" --seed 1 --batch 2 --seq 16 --latent-init exact --loops 3 --dtype float64
$PY $REF compare-golden $QAT/golden.json "$TMP/golden-float64.json" | tail -1
# float64 finite differences of every tensor (quant off, full truncation, 2 loops), and the identities
$PY $REF gradcheck --model $ALL/model.gguf --coords 4 --loops 2 --seq 8 | tail -1
$PY scripts/reference/selfcheck_torch.py --model $ALL/model.gguf
# the C library and trainer against the new goldens (what the vitest files assert)
node --import tsx scripts/reference/c-vs-logits-golden.ts $ALL | tail -1
node --import tsx scripts/reference/trainer-vs-golden.ts $ALL golden-noquant | sed -n '1p;$p'
node --import tsx scripts/reference/trainer-vs-golden.ts $QAT golden | sed -n '1p;$p'

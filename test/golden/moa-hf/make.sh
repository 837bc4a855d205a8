#!/bin/sh
# Regenerates test/golden/moa-hf/: four synthetic MoA HF folders — one per metric with balls, V
# energy, discrepancy modulation, FiLM and router-bias gates on (cosine also with branch_topk 1,
# maha_diag with router_topk 1), and "plain" with every switch the other way — and the
# independent PyTorch reference's logits for sequences.json.
# Needs Debian's torch (/usr/bin/python3); npm test never runs this, it reads the committed files.
set -eu
cd "$(dirname "$0")/../../.."
out=test/golden/moa-hf
gen="node --import tsx scripts/reference/make-hf-checkpoint.ts moa"
$gen $out/l2 --metric l2 --dim 16 --seed 11
$gen $out/cosine --metric cosine --dim 16 --seed 12 --branch-topk 1
$gen $out/maha_diag --metric maha_diag --dim 16 --seed 13 --router-topk 1
# the other side of every switch: plain RoPE (no BlackHoleRoPE / V energy terms), no balls, no
# FiLM or bias gates, no discrepancy, all four paths, two branches; F16 safetensors
$gen $out/plain --metric l2 --dim 16 --seed 14 --r-basis 0 --balls off --feature-gates off --router-gates off \
  --discrepancy off --router-topk 4 --branch-topk 2 --dtype f16
# Two sequences: 64 ids over the whole embedding (288 rows), 9 ids of the tokenizer's 263.
/usr/bin/python3 -c "
import json, random
r = random.Random(5)
print(json.dumps([[r.randrange(288) for _ in range(64)], [r.randrange(263) for _ in range(9)]]))" > $out/sequences.json
for m in l2 cosine maha_diag plain; do
  /usr/bin/python3 scripts/reference/moa_torch.py logits --hf $out/$m --tokens $out/sequences.json \
    --out $out/$m.logits.f32 --float64
done

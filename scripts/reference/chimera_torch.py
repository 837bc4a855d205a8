"""Independent PyTorch reference of the Chimera (every layer kind and block feature) for the golden
files of the C inference and the FP32 trainer, and the trainer's speed peer.

Model (ARCHITECTURES.md §2.0-2.13; conventions from docs/architecture.md, docs/training.md):

  x = E[tokens]  (+ hashed n-gram rows, blocks_torch)    token_embd [V, D], token_ngram [M, D]
  per layer:  x += Mixer(RMSNorm(x; attn_norm))         GD below; XM, TM, SK in mixers_torch.py
              x += FFN(RMSNorm(x; ffn_norm))            SwiGLU below; MoE in blocks_torch.py
  looping models: prelude layers, Parcae loop (blocks_torch.parcae), coda layers
  h = RMSNorm(x; output_norm);  [risk gate, blocks_torch.span_gate];  logits = h E^T   tied head
  loss = SUM over targets != -1 of CE(logits[b,t], targets[b,t])   (natural log)

  GDN (per token, heads h):
    xq = actq(xn)                                       one int8 quantization feeds q, k, v, g
    q~, k~, v~, g~ = BitLinear(xq; W_q, W_k, W_v, W_g);  a = W_a xn, b = W_b xn (float linears, float input)
    q^, k^, v = SiLU(causal depthwise conv_K(.))        weight index K-1 = current token, no bias
    q = q^/max(|q^|,1e-12) * d_k^-1/2,  k = k^/max(|k^|,1e-12)     per head
    beta = sigmoid(b),  g = -exp(A_log) * softplus(a + dt_bias),  alpha = exp(g)
    S_t = alpha S + beta (v - alpha S k) k^T,  o = S_t q               S [d_v, d_k] per head, S_0 = 0
    u = RMSNorm_dv(o; o_norm) * SiLU(g~);  y = BitLinear(actq(u); W_o)
  SwiGLU: xq = actq(xn); y = BitLinear(actq(SiLU(W_gate xq) * (W_up xq)); W_down)

BitLinear training semantics (quant=True, the C trainer's): latent FP32 W;
  forward  W^ = per-row 128-group absmean ternary (scale = max(mean|W|, 1e-6),
           w = clamp(round_half_even(W/scale), -1, 1), W^ = scale*w) and
           x^ = per-64-block absmax int8 (s = absmax/127, 1 if 0; q = clamp(rint(x/s), +-127); x^ = s*q);
  backward straight-through for both: written x + (x^ - x).detach(), W + (W^ - W).detach().
quant=False: plain float linears on the latent weights (used by the finite-difference check).

CLI (run with Debian's python: /usr/bin/python3, torch 1.13):
  golden    --model M.gguf --out DIR [--seed S --batch B --seq T --dtype float32|float64 --latent-init dequant|exact
            --loops N --truncation half|full --no-quant]
  logits    --model M.gguf --out DIR [--seed S]    (golden logits of fixed prompts at every loop count)
  gradcheck --model M.gguf [--batch B --seq T --coords N --seed S --loops N --truncation full|half --only a,b]
  bench     --model M.gguf --batch B --seq T --steps N --threads 2
  forward   --model M.gguf --tokens FILE.json --out FILE.bin     (logits of one sequence, float32, quant on)
  compare   --model M.gguf --c-logits FILE.bin --tokens FILE.json  (ours vs the C library's logits)
See scripts/reference/README.md.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

# Thread settings of the BLAS / OpenMP pools are read when torch loads them, so set them first:
# --threads N for every pool, and idle OpenMP workers sleep instead of spinning (libgomp spins by
# default, which only burns a shared 2-core machine's time; an OMP_WAIT_POLICY in the environment wins).
if "--threads" in sys.argv[:-1]:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _n
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_read import BT2_GROUP, TYPE_BT2, GGUFFile  # noqa: E402
import blocks_torch as blocks  # noqa: E402
import mixers_torch as mixers  # noqa: E402

ACT_BLOCK = 64
SCALE_FLOOR = 1e-6
TIE_WATCH = None  # a list while `compare` runs: per-row min distance of x/s to a rounding boundary
NEAR_TIE = 2e-6  # relative: |x/s - (k+1/2)| / max(|x/s|, 1), ~32 float32 ulps


# ---- quantizers (forward values; the STE wrappers below add the identity backward) --------------------

@torch.no_grad()
def fake_quant_weight(W):
    """Per-row, per-128-group absmean ternary: returns scale*w, same shape/dtype as W [rows, cols]."""
    rows, cols = W.shape
    Wg = W.reshape(rows, cols // BT2_GROUP, BT2_GROUP)
    # mean |W| accumulated in float64 and rounded once to W's dtype (as engine/gguf/bt2.ts quantizeBt2)
    scale = Wg.abs().to(torch.float64).mean(dim=-1, keepdim=True).to(W.dtype).clamp_min(SCALE_FLOOR)
    w = torch.round(Wg / scale).clamp_(-1, 1)  # torch.round = round half to even
    return (w * scale).reshape(rows, cols)


@torch.no_grad()
def fake_quant_act(x):
    """Per-64-block absmax int8 along the last dim: returns s*q (kernels_ref.c quantize_act_ref)."""
    shape = x.shape
    xb = x.reshape(*shape[:-1], shape[-1] // ACT_BLOCK, ACT_BLOCK)
    amax = xb.abs().amax(dim=-1, keepdim=True)
    s = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    v = xb / s
    if TIE_WATCH is not None:
        # distance of x/s to a rounding boundary (k + 1/2), per token row: tells `compare` where a
        # float32-rounding difference between two implementations could flip an int8 value
        # (relative to |x/s|: float32 noise in x is relative, so a big x/s has a wider uncertain band)
        d = ((v - torch.floor(v) - 0.5).abs() / v.abs().clamp_min(1.0)).masked_fill(v.abs() > 127.5, float("inf"))
        TIE_WATCH.append(d.amin(dim=(-1, -2)).reshape(-1))  # per token row (batch 1)
    q = torch.round(v).clamp_(-127, 127)
    return (q * s).reshape(shape)


def ste(x, xq):
    """Value xq, gradient identity to x."""
    return x + (xq - x).detach()


# ---- model ---------------------------------------------------------------------------------------

# Tensors of each layer kind and FFN kind (docs/format.md), the suffixes after "blk.N.".
GDN_TENSORS = ("gdn_q.weight", "gdn_k.weight", "gdn_v.weight", "gdn_g.weight", "gdn_o.weight", "gdn_a.weight",
               "gdn_b.weight", "gdn_a_log", "gdn_dt_bias", "gdn_conv_q.weight", "gdn_conv_k.weight",
               "gdn_conv_v.weight", "gdn_o_norm.weight")
MIXER_TENSORS = {
    "GD": GDN_TENSORS,
    "XM": ("xm_q.weight", "xm_k.weight", "xm_v.weight", "xm_og.weight", "xm_o.weight", "xm_i.weight", "xm_i.bias",
           "xm_f.weight", "xm_f.bias", "xm_norm.weight", "xm_norm.bias"),
    "TM": ("tm_q.weight", "tm_k.weight", "tm_v.weight", "tm_o.weight", "tm_km.weight", "tm_vm.weight",
           "tm_alpha.weight", "tm_alpha.bias", "tm_eta.weight", "tm_eta.bias", "tm_theta.weight", "tm_theta.bias",
           "tm_persist_k", "tm_persist_v", "tm_mem_w1", "tm_mem_w2"),
    "SK": GDN_TENSORS + ("sk_sketch.weight", "sk_role.weight", "sk_filler.weight", "sk_energy.weight",
                         "sk_energy_lambda"),
}
DENSE_TENSORS = ("ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")
MOE_TENSORS = ("ffn_gate_inp.weight", "exp_probs_b.bias", "ffn_gate_exps.weight", "ffn_up_exps.weight",
               "ffn_down_exps.weight")
SHARED_TENSORS = ("ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight")
PARCAE_TENSORS = ("parcae.prelude_norm.weight", "parcae.a_log", "parcae.dt_bias", "parcae.b.weight", "parcae.c.weight")
SPAN_TENSORS = ("output_risk.weight", "output_gate.weight")


class Chimera(torch.nn.Module):
    """The Chimera with every layer kind (GD, XM, TM, SK), dense or MoE FFNs, Parcae looping and the
    span-engine risk gate; parameters named and shaped as in the GGUF ([rows, cols], 3-D as stored),
    in the file's tensor order. `loops` (looping models) is the iteration count of every forward;
    `truncation` ("half" | "full", default the file's chimera.loop.backward_truncation) says which
    iterations carry gradient."""

    def __init__(self, gguf, quant=True, dtype=torch.float32, latent_init="dequant", loops=None, truncation=None):
        super().__init__()
        md = gguf.metadata

        def fail(msg):
            raise SystemExit(f"chimera_torch: {gguf.path}: {msg}")

        if md.get("general.architecture") != "chimera":
            fail(f"general.architecture is {md.get('general.architecture')!r}, not 'chimera'")
        self.quant = quant
        self.V = md["chimera.vocab_size"]
        self.D = md["chimera.embedding_length"]
        self.I = md["chimera.feed_forward_length"]
        self.L = md["chimera.block_count"]
        self.H = md["chimera.gdn.head_count"]
        self.dk = md["chimera.gdn.head_dim"]
        self.dv = md["chimera.gdn.value_dim"]
        self.K = md["chimera.gdn.conv_kernel"]
        self.eps = float(np.float32(md["chimera.rms_norm_eps"]))
        self.types = list(md.get("chimera.layer_types", []))
        if len(self.types) != self.L:
            fail(f"layer_types has {len(self.types)} entries, block_count is {self.L}")
        bad = [f"{i}:{t}" for i, t in enumerate(self.types) if t not in MIXER_TENSORS]
        if bad:
            fail(f"unknown layer types {', '.join(bad)} (known: {', '.join(MIXER_TENSORS)})")
        if "XM" in self.types:
            self.xm_H, self.xm_d = md["chimera.xlstm.head_count"], md["chimera.xlstm.head_dim"]
            self.xm_cap = float(np.float32(md["chimera.xlstm.gate_soft_cap"]))
            self.xm_eps = float(np.float32(md["chimera.xlstm.norm_eps"]))
        if "TM" in self.types:
            self.tm_H, self.tm_d = md["chimera.titans.head_count"], md["chimera.titans.head_dim"]
            self.tm_seg = md["chimera.titans.segment_length"]
            self.tm_theta_max = float(np.float32(md["chimera.titans.theta_max"]))
        self.moe_layers = set(md.get("chimera.moe.layers", []))
        if self.moe_layers:
            self.moe_E, self.moe_K = md["chimera.moe.expert_count"], md["chimera.moe.expert_used_count"]
            self.moe_scale = float(np.float32(md.get("chimera.moe.routed_scaling_factor", 1.0)))
        self.span_gate = bool(md.get("chimera.span_engine.risk_gate", 0))
        self.ngram_order = md.get("chimera.ngram.order", 0)
        if self.ngram_order not in (0, 2, 3):
            fail(f"chimera.ngram.order {self.ngram_order} is not 2 or 3")
        self.looping = "chimera.loop.loop" in md
        if self.looping:
            self.prelude_end = md["chimera.loop.prelude"][1] + 1       # layers [0, prelude_end) ...
            self.loop_end = md["chimera.loop.loop"][1] + 1             # ... [prelude_end, loop_end) looped, then coda
            self.loop_max = md["chimera.loop.max"]
            self.loops = md["chimera.loop.default"] if loops is None else loops
            self.truncation = truncation or md.get("chimera.loop.backward_truncation", "half")
            if not 1 <= self.loops <= self.loop_max:
                fail(f"loop count {self.loops} is outside 1..{self.loop_max}")
            if self.truncation not in ("half", "full"):
                fail(f"backward truncation {self.truncation!r} is not half or full")
        elif loops not in (None, 1):
            fail(f"loop count {loops} for a model without looping (only 1)")

        # The tensors this forward reads must be exactly the file's tensors.
        want = ["token_embd.weight", "output_norm.weight"]
        want += list(SPAN_TENSORS) if self.span_gate else []
        want += ["token_ngram.weight"] if self.ngram_order else []
        want += list(PARCAE_TENSORS) if self.looping else []
        for i, t in enumerate(self.types):
            b = f"blk.{i}."
            want += [b + "attn_norm.weight", b + "ffn_norm.weight"] + [b + s for s in MIXER_TENSORS[t]]
            if i in self.moe_layers:
                want += [b + s for s in MOE_TENSORS]
                if md.get("chimera.moe.shared_expert_count", 0):
                    want += [b + s for s in SHARED_TENSORS]
            else:
                want += [b + s for s in DENSE_TENSORS]
        missing = sorted(set(want) - set(gguf.tensors))
        extra = sorted(set(gguf.tensors) - set(want))
        if missing or extra:
            fail(f"tensor set differs from this model's: missing {missing}, not read {extra}")
        self.names = list(gguf.tensors)  # file order (docs/format.md order for files writeRandomChimera writes)
        self.ternary = {n for n in self.names if gguf.tensors[n].type == TYPE_BT2}
        self.p = {}
        for n in self.names:
            arr = gguf.tensor(n)
            if n in self.ternary and latent_init == "exact":
                arr = exact_latent(gguf, n)
            t = torch.nn.Parameter(torch.from_numpy(np.array(arr, dtype=np.float32)).to(dtype))
            self.register_parameter(n.replace(".", "__"), t)
            self.p[n] = t

    # -- pieces --

    @staticmethod
    def tie_watch_merge(mark):
        """Join the near-tie records appended since len(TIE_WATCH) == mark into one per-token row
        (a layer that quantizes its tokens in pieces, e.g. TM's per-segment write projections)."""
        if TIE_WATCH is not None and len(TIE_WATCH) > mark + 1:
            TIE_WATCH[mark:] = [torch.cat(TIE_WATCH[mark:])]

    @staticmethod
    def tie_watch_mark():
        return len(TIE_WATCH) if TIE_WATCH is not None else 0

    def rmsnorm(self, x, w):
        # kernels_ref.c rmsnorm_ref: y = w * (x * (1 / sqrt(mean(x^2) + eps)))
        inv = 1.0 / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.eps)
        return w * (x * inv)

    def act(self, x):
        return ste(x, fake_quant_act(x)) if self.quant else x

    def weight(self, name):
        W = self.p[name]
        if not (self.quant and name in self.ternary):
            return W
        return ste(W, fake_quant_weight(W.reshape(-1, W.shape[-1])).reshape(W.shape))  # 3-D: stacked matrices

    def conv(self, x, w):
        """Causal depthwise conv + SiLU. x [B, T, C], w [C, K] (w[:, K-1] multiplies the current token)."""
        T = x.shape[1]
        y = F.conv1d(F.pad(x.transpose(1, 2), (self.K - 1, 0)), w.unsqueeze(1), groups=w.shape[0])
        return F.silu(y[:, :, :T].transpose(1, 2))

    @staticmethod
    def l2norm(x, scale):
        # kernels_ref.c l2norm_ref: y = x * (scale / max(||x||, 1e-12))
        return x * (scale / torch.sqrt((x * x).sum(dim=-1, keepdim=True)).clamp_min(1e-12))

    def recurrence(self, q, k, v, beta, alpha):
        """Gated delta rule, batched over (batch, head), Python loop over time.
        q, k [B, T, H, dk]; v [B, T, H, dv]; beta, alpha [B, T, H]. Returns o [B, T, H, dv]."""
        B, T, H, dk = q.shape
        dv = v.shape[-1]
        N = B * H
        # Time-major, (batch*head) flattened, split once with unbind: indexing x[t] inside the loop
        # would make autograd build a full-size zero gradient per step (O(T^2) backward).
        qs = q.permute(1, 0, 2, 3).reshape(T, N, dk, 1).unbind(0)           # q_t as [N, dk, 1]
        kc = k.permute(1, 0, 2, 3).reshape(T, N, dk)
        kcol, krow = kc.unsqueeze(-1).unbind(0), kc.unsqueeze(-2).unbind(0)  # k_t as [N, dk, 1] and [N, 1, dk]
        vs = v.permute(1, 0, 2, 3).reshape(T, N, dv, 1).unbind(0)
        bs = beta.permute(1, 0, 2).reshape(T, N, 1, 1).unbind(0)
        as_ = alpha.permute(1, 0, 2).reshape(T, N, 1, 1).unbind(0)
        S = q.new_zeros(N, dv, dk)
        outs = []
        for t in range(T):
            a_t = as_[t]
            Sk = torch.bmm(S, kcol[t])                                         # S_{t-1} k          [N, dv, 1]
            delta = bs[t] * (vs[t] - a_t * Sk)                                 # beta (v - alpha S k)
            S = torch.addcmul(a_t * S, delta, krow[t])                         # alpha S + delta k^T [N, dv, dk]
            outs.append(torch.bmm(S, qs[t]))                                   # o = S_t q          [N, dv, 1]
        o = torch.stack(outs).squeeze(-1)                                      # [T, N, dv]
        return o.reshape(T, B, H, dv).permute(1, 0, 2, 3)

    def gdn(self, x, i):
        B, T, _ = x.shape
        H, dk, dv = self.H, self.dk, self.dv
        p, b = self.p, f"blk.{i}."
        xq = self.act(x)
        q = F.linear(xq, self.weight(b + "gdn_q.weight"))
        k = F.linear(xq, self.weight(b + "gdn_k.weight"))
        v = F.linear(xq, self.weight(b + "gdn_v.weight"))
        g = F.linear(xq, self.weight(b + "gdn_g.weight"))
        a = F.linear(x, p[b + "gdn_a.weight"])
        bb = F.linear(x, p[b + "gdn_b.weight"])
        q = self.conv(q, p[b + "gdn_conv_q.weight"]).reshape(B, T, H, dk)
        k = self.conv(k, p[b + "gdn_conv_k.weight"]).reshape(B, T, H, dk)
        v = self.conv(v, p[b + "gdn_conv_v.weight"]).reshape(B, T, H, dv)
        q = self.l2norm(q, 1.0 / math.sqrt(dk))
        k = self.l2norm(k, 1.0)
        beta = torch.sigmoid(bb)
        gl = -torch.exp(p[b + "gdn_a_log"]) * F.softplus(a + p[b + "gdn_dt_bias"])  # softplus threshold 20 as C
        o = self.recurrence(q, k, v, beta, torch.exp(gl))
        u = self.rmsnorm(o, p[b + "gdn_o_norm.weight"]) * F.silu(g.reshape(B, T, H, dv))
        return F.linear(self.act(u.reshape(B, T, H * dv)), self.weight(b + "gdn_o.weight"))

    def ffn(self, x, i):
        b = f"blk.{i}."
        xq = self.act(x)
        gate = F.linear(xq, self.weight(b + "ffn_gate.weight"))
        up = F.linear(xq, self.weight(b + "ffn_up.weight"))
        return F.linear(self.act(F.silu(gate) * up), self.weight(b + "ffn_down.weight"))

    def block(self, x, i):
        """Pre-norm residual block i: mixer, then FFN (dense SwiGLU or MoE)."""
        p, b = self.p, f"blk.{i}."
        xn = self.rmsnorm(x, p[b + "attn_norm.weight"])
        kind = self.types[i]
        mix = {"GD": self.gdn, "XM": lambda z, j: mixers.mlstm(self, z, j), "TM": lambda z, j: mixers.titans(self, z, j),
               "SK": lambda z, j: mixers.span_knot(self, z, j)}[kind]
        x = x + mix(xn, i)
        xn = self.rmsnorm(x, p[b + "ffn_norm.weight"])
        return x + (blocks.moe(self, xn, i) if i in self.moe_layers else self.ffn(xn, i))

    def forward(self, tokens):
        """tokens int64 [B, T] -> logits [B, T, V]. Every sequence starts from a fresh state."""
        p = self.p
        x = F.embedding(tokens, p["token_embd.weight"])
        if self.ngram_order:
            x = x + blocks.ngram_embed(self, tokens)
        if not self.looping:
            for i in range(self.L):
                x = self.block(x, i)
        else:
            for i in range(self.prelude_end):
                x = self.block(x, i)

            def loop_block(h, k):
                for i in range(self.prelude_end, self.loop_end):
                    h = self.block(h, i)
                return h
            x = blocks.parcae(self, x, loop_block)
            for i in range(self.loop_end, self.L):
                x = self.block(x, i)
        h = self.rmsnorm(x, p["output_norm.weight"])
        if self.span_gate:
            h = blocks.span_gate(self, h)
        return F.linear(h, p["token_embd.weight"])

    def loss(self, tokens, targets):
        """(sum of token cross-entropies over targets != -1, logits)."""
        logits = self.forward(tokens)
        loss = F.cross_entropy(logits.reshape(-1, self.V), targets.reshape(-1), ignore_index=-1, reduction="sum")
        return loss, logits


def exact_latent(gguf, name):
    """Latent W with fake_quant_weight(W) == the file's scale*w: W = scale*w / mean|w| per 128-group.
    (Plain dequantization W = scale*w re-quantizes to scale*mean|w|*w, i.e. smaller by the group's
    fraction of nonzero codes, ~0.69 at init; see README.) A 3-D tensor (stacked experts) is done
    per matrix."""
    if len(gguf.tensors[name].dims) > 2:
        return exact_latent_dequantized(gguf.tensor(name))
    w, s = gguf.bt2(name)
    rows, cols = w.shape
    wg = w.reshape(rows, cols // BT2_GROUP, BT2_GROUP).astype(np.float64)
    m = np.abs(wg).mean(axis=-1, keepdims=True)
    lat = np.where(m > 0, s[..., None].astype(np.float64) * wg / np.where(m > 0, m, 1), 0.0)
    return lat.reshape(rows, cols).astype(np.float32)


def exact_latent_dequantized(deq):
    """exact_latent from the dequantized values scale*w (float32, any shape, last dim = cols): per
    group the nonzero entries are ±scale, so mean|w| = (nonzero count)/128; same float64 math."""
    shape = deq.shape
    g = deq.reshape(-1, shape[-1] // BT2_GROUP, BT2_GROUP).astype(np.float64)
    m = (g != 0).mean(axis=-1, keepdims=True)
    return np.where(m > 0, g / np.where(m > 0, m, 1), 0.0).reshape(shape).astype(np.float32)


# ---- batch ---------------------------------------------------------------------------------------

def draw_batch(seed, B, T, V):
    """Fixed batch from numpy's PCG64: tokens/targets [B, T] from a stream of T+1 tokens per row
    (targets = next token), about 1/5 of targets set to -1 (never all), first/last ids included."""
    rng = np.random.default_rng(seed)
    stream = rng.integers(0, V, size=(B, T + 1), dtype=np.int64)
    stream[0, 0], stream[-1, 1] = 0, V - 1
    tokens, targets = stream[:, :-1].copy(), stream[:, 1:].copy()
    mask = rng.random((B, T)) < 0.2
    mask[0, 0] = True            # at least one ignored target
    mask[-1, -1] = False         # and at least one counted
    targets[mask] = -1
    return tokens, targets


# ---- commands ------------------------------------------------------------------------------------

def cmd_golden(args):
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    g = GGUFFile(args.model)
    model = Chimera(g, quant=not args.no_quant, dtype=dtype, latent_init=args.latent_init, loops=args.loops,
                    truncation=args.truncation)
    tokens, targets = draw_batch(args.seed, args.batch, args.seq, model.V)
    loss, logits = model.loss(torch.from_numpy(tokens), torch.from_numpy(targets))
    loss.backward()
    os.makedirs(args.out, exist_ok=True)
    np_dtype = "<f8" if dtype == torch.float64 else "<f4"
    suffix = ("" if dtype == torch.float32 else "-float64") + ("" if model.quant else "-noquant")
    with open(os.path.join(args.out, "batch.json"), "w") as f:
        json.dump({"seed": args.seed, "batch": args.batch, "seqLen": args.seq,
                   "tokens": tokens.tolist(), "targets": targets.tolist()}, f)
        f.write("\n")
    entries, chunks, offset = [], [], 0

    def add(name, arr):
        nonlocal offset
        a = np.ascontiguousarray(arr, dtype=np_dtype)
        entries.append({"name": name, "shape": list(a.shape), "offset": offset, "count": int(a.size)})
        chunks.append(a.tobytes())
        offset += a.size

    add("logits", logits.detach().reshape(-1, model.V).numpy())
    for n in model.names:
        # no gradient reached it (MoE selection bias, SK sign encoders, ...): the gradient is 0
        grad = model.p[n].grad
        add(n, grad.numpy() if grad is not None else np.zeros(tuple(model.p[n].shape)))
    with open(os.path.join(args.out, f"golden{suffix}.bin"), "wb") as f:
        for c in chunks:
            f.write(c)
    index = {
        "model": os.path.basename(args.model),
        "dtype": args.dtype,
        "quant": model.quant,
        "latentInit": args.latent_init,
        "loss": float(loss.item()),
        "lossReduction": "sum over targets != -1, natural log",
        "countedTargets": int((targets != -1).sum()),
        "offsetUnit": f"{args.dtype} elements from the start of golden{suffix}.bin (little-endian)",
        **({"loops": model.loops, "truncation": model.truncation} if model.looping else {}),
        "logits": entries[0],
        "tensors": entries[1:],
        "command": "scripts/reference/chimera_torch.py " + " ".join(sys.argv[1:]),
        "torchVersion": torch.__version__,
    }
    with open(os.path.join(args.out, f"golden{suffix}.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(json.dumps({"loss": index["loss"], "tensors": len(entries) - 1, "floats": offset, "out": args.out}))


def cmd_compare_golden(args):
    """Max |a-b| / max|b| per entry of two golden files (e.g. float32 vs float64)."""
    def load(path):
        idx = json.load(open(path))
        data = np.fromfile(path[:-5] + ".bin", dtype="<f8" if idx["dtype"] == "float64" else "<f4")
        get = lambda e: data[e["offset"]:e["offset"] + e["count"]].astype(np.float64)  # noqa: E731
        return idx, {e["name"]: get(e) for e in [idx["logits"]] + idx["tensors"]}
    ia, a = load(args.a)
    ib, b = load(args.b)
    print(f"loss {ia['loss']:.9g} vs {ib['loss']:.9g}  rel {abs(ia['loss'] - ib['loss']) / abs(ib['loss']):.2e}")
    worst = 0.0
    for n in a:
        scale = np.abs(b[n]).max()
        rel = np.abs(a[n] - b[n]).max() / scale if scale > 0 else np.abs(a[n]).max()
        worst = max(worst, rel)
        print(f"  {n:28s} max|d|/max|b| {rel:.2e}   (max|b| {scale:.3e})")
    print(f"worst {worst:.2e}")


def cmd_gradcheck(args):
    torch.manual_seed(args.seed)
    g = GGUFFile(args.model)
    model = Chimera(g, quant=False, dtype=torch.float64, loops=args.loops, truncation=args.truncation)
    tokens, targets = draw_batch(args.seed, args.batch, args.seq, model.V)
    tok, tgt = torch.from_numpy(tokens), torch.from_numpy(targets)
    loss, _ = model.loss(tok, tgt)
    loss.backward()
    if model.looping and model.truncation != "full":
        print("gradcheck: note: truncated backprop ('half') is not the derivative of the loss; use --truncation full")
    rng = np.random.default_rng(args.seed)
    print(f"gradcheck: float64, quant off, batch {args.batch}x{args.seq}, loss {loss.item():.6f}, "
          f"{args.coords} coords per tensor (half largest |grad|, half random), central differences h={args.h:g}")
    worst = 0.0
    with torch.no_grad():
        for n in model.names:
            if args.only and not any(o in n for o in args.only.split(",")):
                continue
            P = model.p[n]
            if P.grad is None:
                P.grad = torch.zeros_like(P)  # no path to the loss (sign encoders, selection bias): FD must be 0 too
            G = P.grad.reshape(-1)
            flat = P.data.reshape(-1)
            half = args.coords // 2
            top = torch.topk(G.abs(), min(half, G.numel())).indices.numpy()
            rand = rng.choice(G.numel(), size=min(args.coords - len(top), G.numel()), replace=False)
            idx = np.unique(np.concatenate([top, rand]))
            gmax = G.abs().max().item()
            max_rel, max_abs = 0.0, 0.0
            for j in idx:
                old = flat[j].item()
                flat[j] = old + args.h
                lp = model.loss(tok, tgt)[0].item()
                flat[j] = old - args.h
                lm = model.loss(tok, tgt)[0].item()
                flat[j] = old
                fd = (lp - lm) / (2 * args.h)
                ad = G[j].item()
                # relative to the coordinate's own gradient, floored at 1e-6 of the tensor's largest
                rel = abs(fd - ad) / max(abs(fd), abs(ad), 1e-6 * gmax, 1e-300)
                max_rel, max_abs = max(max_rel, rel), max(max_abs, abs(fd - ad))
            worst = max(worst, max_rel)
            print(f"  {n:28s} {len(idx):3d} coords  max rel err {max_rel:.2e}  max abs err {max_abs:.2e}  "
                  f"(max|grad| {gmax:.2e})")
    print(json.dumps({"worst_rel_err": worst}))


def loaded_blas():
    """The BLAS libraries mapped into this process (netlib's reference BLAS is ~6x slower than OpenBLAS)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.split()[-1]}
        return sorted(os.path.realpath(p) for p in paths)
    except OSError:
        return []


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = GGUFFile(args.model)
    model = Chimera(g, quant=True, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    rng = np.random.default_rng(0)
    times, cpu, losses = [], [], []
    for step in range(args.warmup + args.steps):
        tokens, targets = draw_batch(int(rng.integers(1 << 30)), args.batch, args.seq, model.V)
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss, _ = model.loss(torch.from_numpy(tokens), torch.from_numpy(targets))
        loss.backward()
        opt.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if step >= args.warmup:
            times.append(dt)
            cpu.append(dc)
            losses.append(loss.item())
    step_s = sum(times) / len(times)
    print(json.dumps({
        "tokens_per_s": round(args.batch * args.seq / step_s, 1),
        "step_ms": round(step_s * 1000, 1),
        "threads": args.threads,
        "torch_version": torch.__version__,
        "batch": args.batch, "seq": args.seq, "steps": args.steps,
        "model": os.path.basename(args.model),
        "step_ms_each": [round(t * 1000, 1) for t in times],
        "cpu_ms_per_step": round(sum(cpu) / len(cpu) * 1000, 1),  # process CPU time (all threads)
        "blas": loaded_blas(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "loadavg_1min": os.getloadavg()[0],
        "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)],
    }))


def _logits_one(model, tokens):
    with torch.no_grad():
        return model.forward(torch.tensor([tokens], dtype=torch.int64))[0].numpy()


def cmd_forward(args):
    model = Chimera(GGUFFile(args.model), quant=not args.no_quant, latent_init=args.latent_init)
    tokens = json.load(open(args.tokens))
    _logits_one(model, tokens).astype("<f4").tofile(args.out)


def logit_sequences(V, seed):
    """The fixed prompts of the logits golden: [0], [V-1, 1, 2], four pseudo-random prompts of 8 tokens,
    one of 24 and 8 single tokens (numpy PCG64 from `seed`). Position 0 runs every component except the
    recurrences over time; the 8- and 24-token prompts cross the TM segment boundaries of the
    all-component model (segments of 4). Several mid-length prompts, because a comparison is tight only
    up to a prompt's first int8 near-tie (see cmd_logits), which often comes within a few tokens."""
    rng = np.random.default_rng(seed)
    return ([[0], [V - 1, 1, 2]] + [rng.integers(0, V, size=8).tolist() for _ in range(4)]
            + [rng.integers(0, V, size=24).tolist()] + [[int(t)] for t in rng.integers(0, V, size=8)])


def cmd_logits(args):
    """Golden inference logits (issue 4): float32, quant on, latents = the file's weights ("exact"),
    every position of each prompt from a fresh state, at every loop count 1..chimera.loop.max (1 for
    a model without looping). Also records, per (loops, prompt), the first position where an int8
    rounding came within NEAR_TIE of a .5 boundary (where another float32 implementation may round the
    other way). Writes DIR/logits.json + DIR/logits.bin (float32 [n, V] per run, concatenated)."""
    global TIE_WATCH
    g = GGUFFile(args.model)
    probe = Chimera(g, quant=True, latent_init="exact")
    seqs = logit_sequences(probe.V, args.seed)
    loop_counts = list(range(1, probe.loop_max + 1)) if probe.looping else [1]
    runs, chunks, offset = [], [], 0
    for loops in loop_counts:
        model = Chimera(g, quant=True, latent_init="exact", loops=loops if probe.looping else None)
        for i, seq in enumerate(seqs):
            TIE_WATCH = []
            logits = _logits_one(model, seq).astype("<f4")
            margin = torch.stack(TIE_WATCH).amin(dim=0).numpy()
            TIE_WATCH = None
            near = np.nonzero(margin < NEAR_TIE)[0]
            runs.append({"loops": loops, "sequence": i, "offset": offset, "count": int(logits.size),
                         "firstNearTie": int(near[0]) if near.size else len(seq),
                         "minTieMargin": float(margin.min())})
            chunks.append(logits.tobytes())
            offset += logits.size
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "logits.bin"), "wb") as f:
        for c in chunks:
            f.write(c)
    index = {
        "model": os.path.basename(args.model),
        "dtype": "float32", "quant": True, "latentInit": "exact",
        "vocab": probe.V,
        "nearTie": NEAR_TIE,
        "sequences": seqs,
        "runs": runs,
        "offsetUnit": "float32 elements from the start of logits.bin (little-endian); run = [len(sequence), vocab] row-major",
        "command": "scripts/reference/chimera_torch.py " + " ".join(sys.argv[1:]),
        "torchVersion": torch.__version__,
    }
    with open(os.path.join(args.out, "logits.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(json.dumps({"runs": len(runs), "floats": offset, "out": args.out,
                      "nearTies": sum(r["firstNearTie"] < len(seqs[r["sequence"]]) for r in runs)}))


def cmd_compare(args):
    """Our float32 quant-on logits vs the C library's for the same sequence(s).
    tokens file: a list of token lists; c-logits: their [n, V] float32 logits concatenated."""
    g = GGUFFile(args.model)
    seqs = json.load(open(args.tokens))
    c_all = np.fromfile(args.c_logits, dtype="<f4")
    for init in args.latent_init.split(","):
        model = Chimera(g, quant=True, latent_init=init)
        at, rels, scale_all = 0, [], 0.0
        print(f"latent init {init!r}:")
        before = []  # max rel error over positions before the first near-tie (no flip possible there)
        for s in seqs:
            global TIE_WATCH
            TIE_WATCH = []
            ours = _logits_one(model, s).astype(np.float64)
            margin = torch.stack(TIE_WATCH).amin(dim=0).numpy()  # [T]
            TIE_WATCH = None
            near = np.nonzero(margin < NEAR_TIE)[0]
            first_tie = int(near[0]) if near.size else len(s)
            c = c_all[at:at + ours.size].reshape(ours.shape).astype(np.float64)
            at += ours.size
            scale = np.abs(c).max()
            err = np.abs(ours - c).max(axis=1) / scale  # per position, relative to the sequence's max |logit|
            rels.append(err)
            before.append(err[:first_tie])
            scale_all = max(scale_all, scale)
            if len(s) > 1 or len(seqs) <= 8:
                print(f"  len {len(s):4d}: max rel {err.max():.2e}  median rel {np.median(err):.2e}  "
                      f"positions > 1e-5: {int((err > 1e-5).sum())}/{len(err)}  max|logit| {scale:.3f}  "
                      f"first near-tie at position {first_tie}")
        singles = np.concatenate([r for r, s in zip(rels, seqs) if len(s) == 1])
        if singles.size:
            print(f"  {singles.size} one-token sequences: max rel {singles.max():.2e}  median {np.median(singles):.2e}  "
                  f"> 1e-5: {int((singles > 1e-5).sum())}")
        allr, pre = np.concatenate(rels), np.concatenate(before)
        print(f"  all {allr.size} positions: max rel {allr.max():.2e}  median {np.median(allr):.2e};  "
              f"the {pre.size} positions before each sequence's first near-tie: max rel "
              f"{pre.max() if pre.size else 0:.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("golden", help="write batch.json, golden.json, golden.bin")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--batch", type=int, default=2)
    s.add_argument("--seq", type=int, default=16)
    s.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    s.add_argument("--latent-init", choices=["dequant", "exact"], default="dequant",
                   help="dequant (spec): BT2 latent = scale*w; exact: scale*w/mean|w| so fake-quant gives the file's weights")
    s.add_argument("--loops", type=int, default=None, help="Parcae loop count (default: the file's chimera.loop.default)")
    s.add_argument("--no-quant", action="store_true", help="plain float forward (the trainer's braid_trainer_set_quant(tr, 0))")
    s.add_argument("--truncation", choices=["half", "full"], default=None, help="default: the file's backward_truncation")
    s = sub.add_parser("compare-golden", help="compare two golden.json (+ .bin) files")
    s.add_argument("a")
    s.add_argument("b")
    s = sub.add_parser("gradcheck", help="float64 finite-difference check, quant off")
    s.add_argument("--model", required=True)
    s.add_argument("--batch", type=int, default=2)
    s.add_argument("--seq", type=int, default=8)
    s.add_argument("--coords", type=int, default=8)
    s.add_argument("--seed", type=int, default=3)
    s.add_argument("--h", type=float, default=1e-5)
    s.add_argument("--loops", type=int, default=None)
    s.add_argument("--truncation", choices=["half", "full"], default="full")
    s.add_argument("--only", default="", help="comma list of substrings: check only tensors whose name contains one")
    s = sub.add_parser("bench", help="training tokens/s (forward+backward+AdamW, float32, quant on)")
    s.add_argument("--model", required=True)
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--seq", type=int, default=256)
    s.add_argument("--steps", type=int, default=3)
    s.add_argument("--warmup", type=int, default=3, help="untimed steps first: the first steps fault in ~2.5 GB of fresh memory (glibc then keeps it), which costs seconds per step in this VM")
    s.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("forward", help="logits [n, V] float32 of one token sequence (JSON list)")
    s.add_argument("--model", required=True)
    s.add_argument("--tokens", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--no-quant", action="store_true")
    s.add_argument("--latent-init", choices=["dequant", "exact"], default="exact")
    s = sub.add_parser("compare", help="compare our logits with the C library's (scripts/reference/c-logits.ts)")
    s.add_argument("--model", required=True)
    s.add_argument("--tokens", required=True)
    s.add_argument("--c-logits", required=True)
    s.add_argument("--latent-init", default="exact,dequant", help="comma list of dequant, exact")
    s = sub.add_parser("logits", help="golden inference logits of fixed prompts at every loop count (logits.json/.bin)")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    {"golden": cmd_golden, "compare-golden": cmd_compare_golden, "gradcheck": cmd_gradcheck, "bench": cmd_bench,
     "forward": cmd_forward, "compare": cmd_compare, "logits": cmd_logits}[args.cmd](args)


if __name__ == "__main__":
    main()

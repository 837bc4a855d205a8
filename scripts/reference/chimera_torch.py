"""Independent PyTorch reference of the GD-only Chimera for the FP32 trainer.

Model (ARCHITECTURES.md §2.0-2.5; C inference: c/src/chimera.c, gdn.c, ffn.c, kernels_ref.c):

  x = E[tokens]                                         token_embd [V, D]
  per layer:  x += GDN(RMSNorm(x; attn_norm))
              x += SwiGLU(RMSNorm(x; ffn_norm))
  h = RMSNorm(x; output_norm);  logits = h E^T          tied head
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
  golden    --model M.gguf --out DIR [--seed S --batch B --seq T --dtype float32|float64 --latent-init dequant|exact]
  gradcheck --model M.gguf [--batch B --seq T --coords N --seed S]
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
        TIE_WATCH.append(d.amin(dim=(-1, -2)))
    q = torch.round(v).clamp_(-127, 127)
    return (q * s).reshape(shape)


def ste(x, xq):
    """Value xq, gradient identity to x."""
    return x + (xq - x).detach()


# ---- model ---------------------------------------------------------------------------------------

class ChimeraGD(torch.nn.Module):
    """GD-only Chimera with dense SwiGLU FFNs, parameters named and shaped as in the GGUF ([rows, cols])."""

    def __init__(self, gguf, quant=True, dtype=torch.float32, latent_init="dequant"):
        super().__init__()
        md = gguf.metadata
        refuse = []
        if md.get("general.architecture") != "chimera":
            refuse.append(f"general.architecture is {md.get('general.architecture')!r}, not 'chimera'")
        types = md.get("chimera.layer_types", [])
        bad = [f"{i}:{t}" for i, t in enumerate(types) if t != "GD"]
        if bad:
            refuse.append(f"layer types other than GD ({', '.join(bad)}); only GD mixers are implemented")
        if md.get("chimera.moe.layers"):
            refuse.append(f"MoE layers {md['chimera.moe.layers']}; only dense SwiGLU FFNs are implemented")
        if "chimera.loop.loop" in md:
            refuse.append("Parcae looping (chimera.loop.*) is not implemented")
        if md.get("chimera.span_engine.risk_gate", 0):
            refuse.append("the span-engine risk gate (chimera.span_engine.risk_gate = 1) is not implemented")
        if refuse:
            raise SystemExit(f"chimera_torch: {gguf.path}: unsupported model:\n  " + "\n  ".join(refuse))

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
        if len(types) != self.L:
            raise SystemExit(f"chimera_torch: layer_types has {len(types)} entries, block_count is {self.L}")

        # Tensor list in docs/format.md order; every one becomes a trainable parameter.
        names = ["token_embd.weight", "output_norm.weight"]
        for i in range(self.L):
            b = f"blk.{i}."
            names += [b + s for s in (
                "attn_norm.weight", "gdn_q.weight", "gdn_k.weight", "gdn_v.weight", "gdn_g.weight", "gdn_o.weight",
                "gdn_a.weight", "gdn_b.weight", "gdn_a_log", "gdn_dt_bias", "gdn_conv_q.weight",
                "gdn_conv_k.weight", "gdn_conv_v.weight", "gdn_o_norm.weight", "ffn_norm.weight",
                "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")]
        missing = [n for n in names if n not in gguf.tensors]
        if missing:
            raise SystemExit(f"chimera_torch: {gguf.path}: missing tensors {missing}")
        self.names = names
        self.ternary = {n for n in names if gguf.tensors[n].type == TYPE_BT2}
        self.p = {}
        for n in names:
            arr = gguf.tensor(n)
            if n in self.ternary and latent_init == "exact":
                arr = exact_latent(gguf, n)
            t = torch.nn.Parameter(torch.from_numpy(np.array(arr, dtype=np.float32)).to(dtype))
            self.register_parameter(n.replace(".", "__"), t)
            self.p[n] = t

    # -- pieces --

    def rmsnorm(self, x, w):
        # kernels_ref.c rmsnorm_ref: y = w * (x * (1 / sqrt(mean(x^2) + eps)))
        inv = 1.0 / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.eps)
        return w * (x * inv)

    def act(self, x):
        return ste(x, fake_quant_act(x)) if self.quant else x

    def weight(self, name):
        W = self.p[name]
        return ste(W, fake_quant_weight(W)) if self.quant and name in self.ternary else W

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

    def forward(self, tokens):
        """tokens int64 [B, T] -> logits [B, T, V]."""
        p = self.p
        x = F.embedding(tokens, p["token_embd.weight"])
        for i in range(self.L):
            b = f"blk.{i}."
            x = x + self.gdn(self.rmsnorm(x, p[b + "attn_norm.weight"]), i)
            x = x + self.ffn(self.rmsnorm(x, p[b + "ffn_norm.weight"]), i)
        h = self.rmsnorm(x, p["output_norm.weight"])
        return F.linear(h, p["token_embd.weight"])

    def loss(self, tokens, targets):
        """(sum of token cross-entropies over targets != -1, logits)."""
        logits = self.forward(tokens)
        loss = F.cross_entropy(logits.reshape(-1, self.V), targets.reshape(-1), ignore_index=-1, reduction="sum")
        return loss, logits


def exact_latent(gguf, name):
    """Latent W with fake_quant_weight(W) == the file's scale*w: W = scale*w / mean|w| per 128-group.
    (Plain dequantization W = scale*w re-quantizes to scale*mean|w|*w, i.e. smaller by the group's
    fraction of nonzero codes, ~0.69 at init; see README.)"""
    w, s = gguf.bt2(name)
    rows, cols = w.shape
    wg = w.reshape(rows, cols // BT2_GROUP, BT2_GROUP).astype(np.float64)
    m = np.abs(wg).mean(axis=-1, keepdims=True)
    lat = np.where(m > 0, s[..., None].astype(np.float64) * wg / np.where(m > 0, m, 1), 0.0)
    return lat.reshape(rows, cols).astype(np.float32)


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
    model = ChimeraGD(g, quant=True, dtype=dtype, latent_init=args.latent_init)
    tokens, targets = draw_batch(args.seed, args.batch, args.seq, model.V)
    loss, logits = model.loss(torch.from_numpy(tokens), torch.from_numpy(targets))
    loss.backward()
    os.makedirs(args.out, exist_ok=True)
    np_dtype = "<f8" if dtype == torch.float64 else "<f4"
    suffix = "" if dtype == torch.float32 else "-float64"
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
        add(n, model.p[n].grad.numpy())
    with open(os.path.join(args.out, f"golden{suffix}.bin"), "wb") as f:
        for c in chunks:
            f.write(c)
    index = {
        "model": os.path.basename(args.model),
        "dtype": args.dtype,
        "quant": True,
        "latentInit": args.latent_init,
        "loss": float(loss.item()),
        "lossReduction": "sum over targets != -1, natural log",
        "countedTargets": int((targets != -1).sum()),
        "offsetUnit": f"{args.dtype} elements from the start of golden{suffix}.bin (little-endian)",
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
    model = ChimeraGD(g, quant=False, dtype=torch.float64)
    tokens, targets = draw_batch(args.seed, args.batch, args.seq, model.V)
    tok, tgt = torch.from_numpy(tokens), torch.from_numpy(targets)
    loss, _ = model.loss(tok, tgt)
    loss.backward()
    rng = np.random.default_rng(args.seed)
    print(f"gradcheck: float64, quant off, batch {args.batch}x{args.seq}, loss {loss.item():.6f}, "
          f"{args.coords} coords per tensor (half largest |grad|, half random), central differences h={args.h:g}")
    worst = 0.0
    with torch.no_grad():
        for n in model.names:
            P = model.p[n]
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
    model = ChimeraGD(g, quant=True, dtype=torch.float32)
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
    model = ChimeraGD(GGUFFile(args.model), quant=not args.no_quant, latent_init=args.latent_init)
    tokens = json.load(open(args.tokens))
    _logits_one(model, tokens).astype("<f4").tofile(args.out)


def cmd_compare(args):
    """Our float32 quant-on logits vs the C library's for the same sequence(s).
    tokens file: a list of token lists; c-logits: their [n, V] float32 logits concatenated."""
    g = GGUFFile(args.model)
    seqs = json.load(open(args.tokens))
    c_all = np.fromfile(args.c_logits, dtype="<f4")
    for init in args.latent_init.split(","):
        model = ChimeraGD(g, quant=True, latent_init=init)
        at, rels, scale_all = 0, [], 0.0
        print(f"latent init {init!r}:")
        before = []  # max rel error over positions before the first near-tie (no flip possible there)
        for s in seqs:
            global TIE_WATCH
            TIE_WATCH = []
            ours = _logits_one(model, s).astype(np.float64)
            margin = torch.stack(TIE_WATCH).amin(dim=0)[0].numpy()  # [T]
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
    args = ap.parse_args()
    {"golden": cmd_golden, "compare-golden": cmd_compare_golden, "gradcheck": cmd_gradcheck, "bench": cmd_bench,
     "forward": cmd_forward, "compare": cmd_compare}[args.cmd](args)


if __name__ == "__main__":
    main()

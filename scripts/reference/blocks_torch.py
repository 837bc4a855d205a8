"""Block features of the PyTorch reference beyond the mixers: the MoE FFN, Parcae looping and the
span-engine risk gate.

Written from ARCHITECTURES.md §2.10 (MoE, the config's DeepSeek-V3 noaux_tc intent), §2.11 (Parcae,
official injection) and §2.13 (risk gate), with the choices of docs/architecture.md and the
training semantics of docs/training.md; the C code (c/src/moe.c, chimera.c, train_parcae.c) was read
only for conventions (tie order of the top-K, truncated-backprop boundary, which inputs are float).
"""
import torch
import torch.nn.functional as F


# ---- MoE (§2.10) ------------------------------------------------------------------------------------

def select_experts(v, K):
    """Top-K of v [N, E] by K rounds of arg-max over the unchosen experts, ties to the lower id
    (docs/architecture.md "MoE"; torch.topk does not promise a tie order). Returns [N, K] ascending."""
    v = v.detach().clone()
    sel = []
    for _ in range(K):
        j = torch.argmax(v, dim=-1)          # first maximal index
        sel.append(j)
        v.scatter_(-1, j.unsqueeze(-1), float("-inf"))
    return torch.sort(torch.stack(sel, dim=-1), dim=-1).values


def swiglu(model, xq, gate, up, down):
    """W_down int8(SiLU(W_gate xq) ⊙ W_up xq); gate/up/down are BitLinear weights [rows, cols]."""
    return F.linear(model.act(F.silu(F.linear(xq, gate)) * F.linear(xq, up)), down)


def moe(model, x, i):
    """s = σ(W_r x) (float router on the unquantized x); sel = top-K of s + b (b selection-only, no
    gradient); w_k = scale · s_sel_k / Σ_sel s; y = FFN_shared(x̂) + Σ_k w_k FFN_sel_k(x̂), x̂ = int8 x.
    Gradient reaches the router only through w (top-K is piecewise constant, §2.19)."""
    p, b = model.p, f"blk.{i}."
    B, T, D = x.shape
    E, K, scale = model.moe_E, model.moe_K, model.moe_scale
    s = torch.sigmoid(F.linear(x, p[b + "ffn_gate_inp.weight"]))                            # [B, T, E]
    sel = select_experts((s + p[b + "exp_probs_b.bias"].detach()).reshape(-1, E), K)        # [N, K]
    ssel = s.reshape(-1, E).gather(-1, sel)
    w = ssel / ssel.sum(-1, keepdim=True) * scale                                           # [N, K]
    xq = model.act(x).reshape(-1, D)
    gate = model.weight(b + "ffn_gate_exps.weight")                                         # [E, I_e, D]
    up = model.weight(b + "ffn_up_exps.weight")
    down = model.weight(b + "ffn_down_exps.weight")                                         # [E, D, I_e]
    # every expert on every row (tiny models), then each row keeps its selected slots
    outs = torch.stack([swiglu(model, xq, gate[e], up[e], down[e]) for e in range(E)], dim=1)  # [N, E, D]
    picked = outs.gather(1, sel.unsqueeze(-1).expand(-1, -1, D))                            # [N, K, D]
    y = (w.unsqueeze(-1) * picked).sum(1)
    if b + "ffn_gate_shexp.weight" in p:
        y = y + swiglu(model, xq, model.weight(b + "ffn_gate_shexp.weight"), model.weight(b + "ffn_up_shexp.weight"),
                       model.weight(b + "ffn_down_shexp.weight"))
    return y.reshape(B, T, D)


# ---- Parcae looping (§2.11) ----------------------------------------------------------------------

def parcae(model, x, loop_block):
    """x = the prelude's output [B, T, D]; loop_block(h, k) runs the loop layers once (iteration k).
      e = RMSNorm(x; prelude_norm);  inj = Δ ⊙ (B e),  Δ = softplus(dt_bias),  Ā = exp(-Δ ⊙ exp(A_log))
      h_0 = 0;  h_k = R_k(Ā ⊙ h_{k-1} + inj), k = 1..n;  return C h_n
    h_0 = 0 (not Parcae's random init, docs/architecture.md). Truncation "half" (the trainer's
    chimera.loop.backward_truncation): only the last ⌈n/2⌉ iterations carry gradient; the earlier ones
    are constants (run without grad), while Ā and inj still get the gradient of the first
    gradient-carrying iteration's input Ā ⊙ h + inj (train_parcae.c does the same)."""
    p = model.p
    n = model.loops
    first_grad = n - (n + 1) // 2 if model.truncation == "half" else 0
    delta = F.softplus(p["parcae.dt_bias"])
    abar = torch.exp(-delta * torch.exp(p["parcae.a_log"]))
    inj = delta * F.linear(model.rmsnorm(x, p["parcae.prelude_norm.weight"]), p["parcae.b.weight"])
    h = None
    for k in range(n):
        # h from a no-grad iteration is a constant here: the boundary of the truncation
        with torch.set_grad_enabled(k >= first_grad and torch.is_grad_enabled()):
            h = loop_block(inj if h is None else abar * h + inj, k)
    return F.linear(h, p["parcae.c.weight"])


# ---- span-engine risk gate (§2.13) ---------------------------------------------------------------

def span_gate(model, h):
    """h ⊙ σ(W_rg [h ; σ(w_risk·h)]), float math, after the final RMSNorm."""
    p = model.p
    risk = torch.sigmoid((h * p["output_risk.weight"]).sum(-1, keepdim=True))
    return h * torch.sigmoid(F.linear(torch.cat([h, risk], dim=-1), p["output_gate.weight"]))


# ---- hashed n-gram input embedding (docs/architecture.md "N-gram embedding") ------------------------

_M64 = (1 << 64) - 1


def _mix64(z):
    """splitmix64's finaliser on a Python int (exact 64-bit wrap-around)."""
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def ngram_row(hist, cur, V, rows):
    """Row of the n-gram hist (oldest first, 1 or 2 previous tokens) + cur: key = (k+1, hist…, cur)
    in base V, wrapped to 64 bits, mixed, mod rows."""
    key = len(hist) + 1
    for h in hist:
        key = (key * V + h) & _M64
    key = (key * V + cur) & _M64
    return _mix64(key) % rows


def ngram_embed(model, tokens):
    """Σ_{k=2..order} G[row of the k-gram ending at t] for tokens [B, T]; a position with fewer than
    k−1 tokens before it in its row skips the k-gram (each sequence starts with no history)."""
    G = model.p["token_ngram.weight"]
    B, T = tokens.shape
    V, rows = model.V, G.shape[0]
    tk = tokens.tolist()
    idx, pos = [], []
    for b in range(B):
        for t in range(T):
            for j in range(1, model.ngram_order):
                if t >= j:
                    idx.append(ngram_row(tk[b][t - j:t], tk[b][t], V, rows))
                    pos.append(b * T + t)
    out = torch.zeros(B * T, G.shape[1], dtype=G.dtype)
    if idx:
        out = out.index_add(0, torch.tensor(pos), G[torch.tensor(idx)])
    return out.reshape(B, T, -1)

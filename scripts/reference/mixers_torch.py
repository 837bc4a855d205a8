"""The XM, TM and SK mixers of the PyTorch reference (the GD mixer is in chimera_torch.py).

Each function takes the model (for its BitLinear helpers `act`, `weight`, its parameters `p` and
hyper-parameters) and the block's normed input x [B, T, D], and returns the mixer output [B, T, D].
Every sequence starts from a fresh state (the trainer's semantics; also a fresh inference context).

Written from ARCHITECTURES.md §2.6 (XM), §2.8-P (TM), §2.9 (SK) and the choices recorded in
docs/architecture.md; the C code (c/src/mlstm.c, titans.c, tsp.c) was read only for conventions:
which inputs are int8-quantized (one quantization of x feeds all BitLinears of a projection group,
the float gate linears read the unquantized x), tensor names and layouts.
"""
import math

import torch
import torch.nn.functional as F


def l2norm(x):
    """x / max(||x||, 1e-12) over the last dim (kernels_ref.c l2norm_ref, scale 1)."""
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True)).clamp_min(1e-12)


def heads(x, H):
    """[B, T, H*d] -> [B, T, H, d]."""
    B, T, _ = x.shape
    return x.reshape(B, T, H, -1)


# ---- XM: xLSTM mLSTM (§2.6) ----------------------------------------------------------------------

def mlstm(model, x, i):
    """q = (W_q x̂) d^-1/2, k = W_k x̂, v = W_v x̂, õ = W_og x̂ (x̂ = int8 x, one quantization);
    ĩ = cap(W_i x + b_i), ℓ = log σ(cap(W_f x + b_f)), cap(z) = c·tanh(z/c) (float gates on x);
    stabilised recurrence with m_0 = -inf (first token: m = ĩ, f' = 0);
    h = LayerNorm_d(h̃) per head (shared affine); y = W_o int8(σ(õ) ⊙ h).
    The stabiliser m is differentiated as computed (max picks a branch), which is the exact
    gradient (train_mlstm.c derives the same; ARCHITECTURES.md §2.19 suggests stop-gradient, which
    differs only through the 1e-6 of the denominator)."""
    p, b = model.p, f"blk.{i}."
    B, T, _ = x.shape
    H, d, cap = model.xm_H, model.xm_d, model.xm_cap
    xq = model.act(x)
    q = heads(F.linear(xq, model.weight(b + "xm_q.weight")), H) * (1.0 / math.sqrt(d))
    k = heads(F.linear(xq, model.weight(b + "xm_k.weight")), H)
    v = heads(F.linear(xq, model.weight(b + "xm_v.weight")), H)
    og = F.linear(xq, model.weight(b + "xm_og.weight"))
    ig = cap * torch.tanh((F.linear(x, p[b + "xm_i.weight"]) + p[b + "xm_i.bias"]) / cap)   # [B, T, H]
    fz = cap * torch.tanh((F.linear(x, p[b + "xm_f.weight"]) + p[b + "xm_f.bias"]) / cap)
    lf = F.logsigmoid(fz)

    h = mlstm_recurrent(q, k, v, ig, lf)
    h = F.layer_norm(h, (d,), p[b + "xm_norm.weight"], p[b + "xm_norm.bias"], model.xm_eps)
    o = torch.sigmoid(og) * h.reshape(B, T, H * d)
    return F.linear(model.act(o), model.weight(b + "xm_o.weight"))


def mlstm_recurrent(q, k, v, ig, lf):
    """Stabilised mLSTM recurrence (§2.6), m_0 = -inf: q (already scaled), k, v [B, T, H, d], ĩ, ℓ
    [B, T, H] -> h̃ [B, T, H, d]. Time-major, split once with unbind (see chimera_torch recurrence)."""
    B, T, H, d = q.shape
    N = B * H
    tm = lambda z: z.permute(1, 0, 2, 3).reshape(T, N, d).unbind(0)  # noqa: E731
    qs, ks, vs = tm(q), tm(k), tm(v)
    igs = ig.permute(1, 0, 2).reshape(T, N, 1).unbind(0)
    lfs = lf.permute(1, 0, 2).reshape(T, N, 1).unbind(0)
    C = n = m = None
    outs = []
    for t in range(T):
        if t == 0:  # m_1 = ĩ_1, f' = 0
            m_t = igs[0]
            C = (torch.exp(igs[0] - m_t) * vs[0]).unsqueeze(-1) * ks[0].unsqueeze(-2)      # [N, d, d]
            n = torch.exp(igs[0] - m_t) * ks[0]
        else:
            m_t = torch.maximum(lfs[t] + m, igs[t])
            fp = torch.exp(lfs[t] + m - m_t)
            ip = torch.exp(igs[t] - m_t)
            C = fp.unsqueeze(-1) * C + (ip * vs[t]).unsqueeze(-1) * ks[t].unsqueeze(-2)
            n = fp * n + ip * ks[t]
        m = m_t
        nq = (n * qs[t]).sum(-1, keepdim=True)
        den = torch.maximum(nq.abs(), torch.exp(-m_t)) + 1e-6
        outs.append(torch.bmm(C, qs[t].unsqueeze(-1)).squeeze(-1) / den)
    return torch.stack(outs).reshape(T, B, H, d).permute(1, 0, 2, 3)


def mlstm_parallel(q, k, v, ig, lf):
    """The parallel form of §2.6 (FULL's training form), same arguments: F_t = Σ_{u≤t} ℓ_u,
    L_ts = F_t - F_s + ĩ_s (s ≤ t), m_t = max_s L_ts, W_ts = (q_t·k_s) e^{L_ts - m_t},
    h̃_t = Σ_s W_ts v_s / (max(|Σ_s W_ts|, e^{-m_t}) + 1e-6). Only for selfcheck_torch.py."""
    T = q.shape[1]
    Fc = torch.cumsum(lf, dim=1).transpose(1, 2)                                            # [B, H, T]
    L = Fc.unsqueeze(-1) - Fc.unsqueeze(-2) + ig.transpose(1, 2).unsqueeze(-2)              # [B, H, t, s]
    L = L.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    m = L.amax(-1, keepdim=True)
    W = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)) * torch.exp(L - m)
    den = torch.maximum(W.sum(-1, keepdim=True).abs(), torch.exp(-m)) + 1e-6
    return (W @ v.transpose(1, 2) / den).transpose(1, 2)


# ---- TM: Titans MAC, paper variant (§2.8-P, docs/architecture.md "TM") ------------------------------

def mem_apply(W1, W2, u):
    """Per-head memory MLP M(u) = W2 SiLU(W1 u). W1 [B, H, dm, d], W2 [B, H, d, dm], u [B, H, n, d].
    Returns (p = M(u), a = W1 u, z = SiLU(a))."""
    a = u @ W1.transpose(-1, -2)
    z = F.silu(a)
    return z @ W2.transpose(-1, -2), a, z


def titans(model, x, i):
    """Per head, memory at segment start M⁰ (W1⁰, W2⁰ from the file for a fresh sequence):
      q, k, v = W_q x̂, W_k x̂, W_v x̂ (one int8 quantization), q, k L2-normalised per head
      α = σ(W_α x + b_α), η = σ(W_η x + b_η), θ = θ_max σ(W_θ x + b_θ)   (float, unquantized x)
      r_t = M⁰(q_t); y_t = softmax(d^-1/2 q_t·[P_k ; L2norm(r_j) ; k_j]) [P_v ; r_j ; v_j], j ≤ t in the segment
      k^M = L2norm(W_kM ŷ), v^M = W_vM ŷ (ŷ = int8 concat_h y);  a = W1⁰ k^M, z = SiLU(a), p = W2⁰ z
      o = y ⊙ σ(p);  e = 2(p - v^M), δ = (W2⁰ᵀ e) ⊙ SiLU'(a);  g_W1 = δ k^Mᵀ, g_W2 = e zᵀ
      S ← η S - θ g,  M ← (1-α) M + S  per token;  M⁰ ← M when the segment is full
      y_out = W_o int8(concat_h o)
    The inner gradient g is written out (not torch.autograd.grad), so autograd differentiates through
    it: the second-order terms the trainer's TM backward needs (SiLU'' appears via SiLU'(a))."""
    p, b = model.p, f"blk.{i}."
    B, T, _ = x.shape
    H, d, Cs, tmax = model.tm_H, model.tm_d, model.tm_seg, model.tm_theta_max
    xq = model.act(x)
    q = l2norm(heads(F.linear(xq, model.weight(b + "tm_q.weight")), H)).transpose(1, 2)   # [B, H, T, d]
    k = l2norm(heads(F.linear(xq, model.weight(b + "tm_k.weight")), H)).transpose(1, 2)
    v = heads(F.linear(xq, model.weight(b + "tm_v.weight")), H).transpose(1, 2)
    gate = lambda n: (F.linear(x, p[b + n + ".weight"]) + p[b + n + ".bias"]).transpose(1, 2)  # noqa: E731 [B, H, T]
    alpha, eta = torch.sigmoid(gate("tm_alpha")), torch.sigmoid(gate("tm_eta"))
    theta = tmax * torch.sigmoid(gate("tm_theta"))
    Pk, Pv = p[b + "tm_persist_k"], p[b + "tm_persist_v"]                                 # [H, Np, d]
    W1 = p[b + "tm_mem_w1"].expand(B, -1, -1, -1)                                          # [B, H, dm, d]
    W2 = p[b + "tm_mem_w2"].expand(B, -1, -1, -1)                                          # [B, H, d, dm]
    R1, R2 = W1, W2                     # running memory
    S1 = S2 = None                      # momentum (0)
    scale = 1.0 / math.sqrt(d)
    outs = []
    mark = model.tie_watch_mark()
    for t0 in range(0, T, Cs):
        t1 = min(T, t0 + Cs)
        n = t1 - t0
        qs, ks, vs = q[:, :, t0:t1], k[:, :, t0:t1], v[:, :, t0:t1]
        # (A) attention over persistent, memory and local tokens of this segment
        r, _, _ = mem_apply(W1, W2, qs)                                                    # [B, H, n, d]
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        lp = torch.einsum("bhnd,hpd->bhnp", qs, Pk)
        lr = (qs @ l2norm(r).transpose(-1, -2)).masked_fill(~causal, float("-inf"))
        ll = (qs @ ks.transpose(-1, -2)).masked_fill(~causal, float("-inf"))
        w = torch.softmax(torch.cat([lp, lr, ll], dim=-1) * scale, dim=-1)
        Np = Pk.shape[1]
        y = (torch.einsum("bhnp,hpd->bhnd", w[..., :Np], Pv) + w[..., Np:Np + n] @ r + w[..., Np + n:] @ vs)
        # (B) write keys / values from int8 concat_h y
        yq = model.act(y.transpose(1, 2).reshape(B, n, H * d))
        km = l2norm(heads(F.linear(yq, model.weight(b + "tm_km.weight")), H)).transpose(1, 2)
        vm = heads(F.linear(yq, model.weight(b + "tm_vm.weight")), H).transpose(1, 2)
        # (C) output gate and the memory update, at the segment-start memory
        pm, a, z = mem_apply(W1, W2, km)
        outs.append(y * torch.sigmoid(pm))
        e = 2.0 * (pm - vm)                                                                # [B, H, n, d]
        sg = torch.sigmoid(a)
        delta = (e @ W2) * (sg * (1.0 + a * (1.0 - sg)))                                   # [B, H, n, dm]
        for j in range(n):
            tt = t0 + j
            g1 = delta[:, :, j].unsqueeze(-1) * km[:, :, j].unsqueeze(-2)                 # [B, H, dm, d]
            g2 = e[:, :, j].unsqueeze(-1) * z[:, :, j].unsqueeze(-2)                      # [B, H, d, dm]
            a_t, e_t, th_t = z4(alpha[:, :, tt]), z4(eta[:, :, tt]), z4(theta[:, :, tt])
            R1, S1 = memory_step(R1, S1, g1, a_t, e_t, th_t)
            R2, S2 = memory_step(R2, S2, g2, a_t, e_t, th_t)
        if n == Cs:
            W1, W2 = R1, R2
    model.tie_watch_merge(mark)  # the per-segment quantizations of y as one record per token (batch 1)
    o = torch.cat(outs, dim=2).transpose(1, 2).reshape(B, T, H * d)
    return F.linear(model.act(o), model.weight(b + "tm_o.weight"))


def memory_step(M, S, g, alpha, eta, theta):
    """One token of the memory recurrence (§2.8-P): S ← η S − θ g, M ← (1 − α) M + S; S = None is 0.
    Returns (M, S)."""
    S = -theta * g if S is None else eta * S - theta * g
    return (1.0 - alpha) * M + S, S


def z4(g):
    """[B, H] gate -> [B, H, 1, 1]."""
    return g.unsqueeze(-1).unsqueeze(-1)


# ---- SK: TSP span knot (§2.9, the FULL reference's forward) -----------------------------------------

def span_knot(model, x, i):
    """o = GDN(x) (the layer's own gdn_* tensors); sk = sign(W_s o), r = sign(W_r o), f = sign(W_f o)
    (float encoders on the unquantized o); coh_t = mean[sk_t ≠ sk_{t-1}] (0 at t = 0), bind =
    mean[sign(r f r) ≠ f]; E = Σ_k λ_k c_k (e_k·o), c = (1, coh, bind, 1, 1); y = o + 0.01 E 1_D.
    sign() has zero gradient: coh, bind are constants and W_s, W_r, W_f get none."""
    p, b = model.p, f"blk.{i}."
    o = model.gdn(x, i)
    with torch.no_grad():
        sk = torch.sign(F.linear(o, p[b + "sk_sketch.weight"]))
        r = torch.sign(F.linear(o, p[b + "sk_role.weight"]))
        f = torch.sign(F.linear(o, p[b + "sk_filler.weight"]))
        coh = torch.zeros(o.shape[:2], dtype=o.dtype)
        coh[:, 1:] = (sk[:, 1:] != sk[:, :-1]).to(o.dtype).mean(-1)
        bind = (torch.sign(r * f * r) != f).to(o.dtype).mean(-1)
        one = torch.ones_like(coh)
        c = torch.stack([one, coh, bind, one, one], dim=-1)                                # [B, T, 5]
    en = F.linear(o, p[b + "sk_energy.weight"])                                              # [B, T, 5]
    E = (en * c * p[b + "sk_energy_lambda"]).sum(-1, keepdim=True)
    return o + 0.01 * E

"""Independent PyTorch reference of a MoA-MetricLM forward, from a Hugging Face folder.

Computes the all-position logits of fixed token sequences from an HF folder's float
weights (config.json + *.safetensors), so braid's converter + C forward can be checked
against something that shares none of their code (test/model/moa-hf-reference.test.ts
compares with the golden this writes).

Written from ../shared/ARCHITECTURES.md §2-MoA and docs/architecture.md "MoA" (the
choices braid made where the card is silent). No KV cache: every position is computed
at once from the whole sequence with explicit distances and an explicit causal/ball mask,
unlike the C code (dot-product identity, per-head in-ball lists, cache).

Places where the docs left a convention open and the C code was read to settle it:
  * ball membership for `cosine` uses the raw pre-RoPE key (not the L2-normalised one)
    — c/src/moa_attention.c, "ball membership on the pre-RoPE key";
  * L2 normalisation (cosine) divides by max(‖z‖, 1e-12), i.e. F.normalize's eps;
  * MHA head h uses kv head g = h·G/H (G = H: its own) — same file.
The HF tensor names and the positivity maps of α, ω, radius are the converter's
(engine/convert/moa.ts, docs/format.md "braid convert"); they live in one table below,
HF_NAMES, and one map, POSITIVE.

CLI:
  python3 moa_torch.py logits --hf <folder> --tokens <json> --out <file> [--float64] [--write-float64]
    tokens: a JSON file holding a list of token-id lists; out: raw little-endian float32
    (float64 with --write-float64) logits, the sequences one after another, each
    [len(seq), vocab] row-major. --float64 computes in float64 (the golden: float64 math,
    rounded to float32 once at the end). Prints a one-line JSON summary with the margins of
    the discontinuous decisions (router / branch top-k cut, ball boundary).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

# ---- safetensors (the format: u64 LE header length, JSON header, raw little-endian data) ----

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def _read_safetensors_file(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        lo, hi = info["data_offsets"]
        raw = data[base + lo : base + hi]
        if dtype == "BF16":  # widen: bf16 is the top half of a float32
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif dtype in _ST_DTYPES:
            arr = np.frombuffer(raw, dtype=np.dtype(_ST_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {dtype}; the reference reads F32/F16/BF16/F64")
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def read_hf_weights(folder):
    """Every tensor of the folder (single file or sharded with an index), as float64 numpy."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(x for x in os.listdir(folder) if x.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors")
    out = {}
    for name in files:
        out.update(_read_safetensors_file(os.path.join(folder, name)))
    return out


# ---- the one name table: HF tensor name (per layer with {i}) -> this reference's name ----
# Filled from the converter's table (/tmp/lead/h3-generator-ready.md, docs/format.md
# "braid convert"). <a> in the reference names is "mha" or "mqa".

HF_NAMES = {
    "embed": "model.embed_tokens.weight",
    "norm_f.w": "model.norm.weight",
    "norm_f.b": "model.norm.bias",
}
TIED_HEAD = "lm_head.weight"  # optional; must equal the embedding (MoA ties them)
HF_LAYER_NAMES = {
    "ln1.w": "model.layers.{i}.ln1.weight",
    "ln1.b": "model.layers.{i}.ln1.bias",
    "ln2.w": "model.layers.{i}.ln2.weight",
    "ln2.b": "model.layers.{i}.ln2.bias",
    "router.w1": "model.layers.{i}.router.fc1.weight",
    "router.b1": "model.layers.{i}.router.fc1.bias",
    "router.w2": "model.layers.{i}.router.fc2.weight",
    "router.b2": "model.layers.{i}.router.fc2.bias",
    "film.gamma": "model.layers.{i}.router.film_gamma.weight",  # only with enable_feature_gates
    "film.beta": "model.layers.{i}.router.film_beta.weight",
    "gate.w": "model.layers.{i}.router.bias_gate.weight",  # only with enable_router_gates
    "gate.b": "model.layers.{i}.router.bias_gate.bias",
    "conv.dw.w": "model.layers.{i}.local_conv.dw.weight",  # Conv1d depthwise [D, 1, K]
    "conv.dw.b": "model.layers.{i}.local_conv.dw.bias",
    "conv.pw.w": "model.layers.{i}.local_conv.pw.weight",
    "mix.w1": "model.layers.{i}.channel_mix.fc1.weight",
    "mix.b1": "model.layers.{i}.channel_mix.fc1.bias",
    "mix.w2": "model.layers.{i}.channel_mix.fc2.weight",
    "mix.b2": "model.layers.{i}.channel_mix.fc2.bias",
    "ls_mix": "model.layers.{i}.ls_mix.gamma",
    "ls_ffn": "model.layers.{i}.ls_ffn.gamma",
    "ffn.router": "model.layers.{i}.ffn.router.weight",
    "ffn.gate": "model.layers.{i}.ffn.swiglu.gate_proj.weight",
    "ffn.up": "model.layers.{i}.ffn.swiglu.up_proj.weight",
    "ffn.down": "model.layers.{i}.ffn.swiglu.down_proj.weight",
    "ffn.conv_in": "model.layers.{i}.ffn.sepconv.proj_in.weight",
    "ffn.conv_dw.w": "model.layers.{i}.ffn.sepconv.dw.weight",  # [C, 1, K]
    "ffn.conv_dw.b": "model.layers.{i}.ffn.sepconv.dw.bias",
    "ffn.conv_out": "model.layers.{i}.ffn.sepconv.proj_out.weight",
    "ffn.lr_down": "model.layers.{i}.ffn.lowrank.down.weight",
    "ffn.lr_up": "model.layers.{i}.ffn.lowrank.up.weight",
}
OPTIONAL_LAYER = {"film.gamma": "enable_feature_gates", "film.beta": "enable_feature_gates",
                  "gate.w": "enable_router_gates", "gate.b": "enable_router_gates"}
HF_ATTN_NAMES = {  # {a}: "mha" or "mqa"
    "q": "model.layers.{i}.{a}.q_proj.weight",
    "k": "model.layers.{i}.{a}.k_proj.weight",
    "v": "model.layers.{i}.{a}.v_proj.weight",
    "o": "model.layers.{i}.{a}.o_proj.weight",
    "alpha": "model.layers.{i}.{a}.alpha_raw",
    "maha": "model.layers.{i}.{a}.maha_raw",
    "origin": "model.layers.{i}.{a}.ball_origin",
    "radius": "model.layers.{i}.{a}.ball_radius_raw",
    "rope_a": "model.layers.{i}.{a}.rope.phase_a",
    "rope_b": "model.layers.{i}.{a}.rope.phase_b",
    "energy_c": "model.layers.{i}.{a}.rope.energy_c",
    "energy_g": "model.layers.{i}.{a}.rope.energy_g",
    "disc": "model.layers.{i}.{a}.rope.disc",
}
# Raw trained parameter -> effective positive value (softplus, ARCHITECTURES.md M.2/M.6).
POSITIVE = {"alpha": F.softplus, "maha": F.softplus, "radius": F.softplus}

PATHS = ("conv", "mha", "mix", "mqa")  # router output order (docs/architecture.md, M.1)

# Discontinuities a float32 forward could fall on the other side of than float64: the router's
# and branch router's top-k cuts and the ball boundary. Recorded per run, so a golden shows its
# margins (a margin far above float32 rounding means both sides take the same branch).
STATS = {"router_gap": math.inf, "branch_gap": math.inf, "ball_margin": math.inf, "keys_in_ball": 0, "keys_tested": 0}


class Weights:
    """HF tensors looked up by reference name; every lookup is recorded so unused tensors show."""

    def __init__(self, tensors, dtype):
        self.t = tensors
        self.dtype = dtype
        self.used = set()

    def get(self, hf_name, shape=None, optional=False):
        if hf_name not in self.t:
            if optional:
                return None
            raise KeyError(f"tensor {hf_name} is missing from the HF folder")
        self.used.add(hf_name)
        x = torch.from_numpy(np.ascontiguousarray(self.t[hf_name])).to(self.dtype)
        if shape is not None:
            if x.numel() != math.prod(shape):
                raise ValueError(f"tensor {hf_name} has shape {list(x.shape)}, expected {shape} elements")
            x = x.reshape(shape)
        return x

    def unused(self):
        return sorted(set(self.t) - self.used)


# ---- the math (ARCHITECTURES.md §2-MoA) ----


def layer_norm(x, w, b, eps):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)  # biased variance, affine


def gelu(x):
    return F.gelu(x)  # exact erf form (nn.GELU default)


def causal_depthwise(x, w, b):
    """x [T, C], w [C, K] (tap K-1 = current token), b [C]: c_t = b + Σ_j w[:, j] ⊙ x_{t-K+1+j}."""
    T, C = x.shape
    K = w.shape[1]
    xp = torch.cat([torch.zeros(K - 1, C, dtype=x.dtype), x], 0)  # zeros before position 0
    out = b.expand(T, C).clone()
    for j in range(K):
        out = out + w[:, j] * xp[j : j + T]
    return out


def black_hole_phases(T, d, theta_base, A, B, dtype):
    """φ[g, p, i] = p θ_i + Σ_r (A[g,i,r] sin ν_r p + B[g,i,r] cos ν_r p)  (M.5)."""
    p = torch.arange(T, dtype=torch.float64)
    theta = theta_base ** (-2.0 * torch.arange(d // 2, dtype=torch.float64) / d)
    phi = p[:, None] * theta[None, :]  # [T, d/2]
    if A is None:
        return phi[None].to(dtype), None, None
    R = A.shape[-1]
    nu = theta_base ** (-torch.arange(1, R + 1, dtype=torch.float64) / R)  # r = 1..R
    sn, cs = torch.sin(nu[None, :] * p[:, None]), torch.cos(nu[None, :] * p[:, None])  # [T, R]
    pert = torch.einsum("tr,gir->gti", sn, A.double()) + torch.einsum("tr,gir->gti", cs, B.double())
    return (phi[None] + pert).to(dtype), sn.to(dtype), cs.to(dtype)


def rotate_pairs(z, phi):
    """z [T, d], phi [T, d/2]: rotate interleaved pairs (z_2i, z_2i+1) by φ (norm preserving)."""
    z0, z1 = z[:, 0::2], z[:, 1::2]
    c, s = torch.cos(phi), torch.sin(phi)
    out = torch.empty_like(z)
    out[:, 0::2] = z0 * c - z1 * s
    out[:, 1::2] = z0 * s + z1 * c
    return out


def metric_attention(u, a, cfg, H, G, disc_signal):
    """MetricMHA (G = H) or MetricMQA (G = 1) on LN₁ output u [T, D] (M.2–M.6). Returns [T, D]."""
    T, D = u.shape
    d = D // H
    q = (u @ a["q"].T).reshape(T, H, d)
    k = (u @ a["k"].T).reshape(T, G, d)  # pre-RoPE keys (the ball test reads these)
    v = (u @ a["v"].T).reshape(T, G, d)
    phi, sn, cs = black_hole_phases(T, d, cfg["theta_base"], a.get("rope_a"), a.get("rope_b"), u.dtype)
    if phi.shape[0] == 1:
        phi = phi.expand(G, T, d // 2)
    # V energy: v ← v · exp(ln A · tanh(Σ_r C sin ν_r p + G cos ν_r p + m_t))
    if cfg["enable_v_energy"]:
        e = torch.zeros(T, G, dtype=u.dtype)
        if sn is not None:
            e = e + sn @ a["energy_c"].T + cs @ a["energy_g"].T
        if cfg["discrepancy_modulation"]:
            e = e + disc_signal[:, None] * a["disc"][None, :]
        v = v * torch.exp(math.log(cfg["energy_amplification"]) * torch.tanh(e))[:, :, None]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    eye = torch.eye(T, dtype=torch.bool)
    heads = []
    for h in range(H):
        g = h * G // H
        qh, kh_pre = q[:, h], k[:, g]
        qr, kr = rotate_pairs(qh, phi[g]), rotate_pairs(kh_pre, phi[g])
        metric = cfg["metric"]
        if metric == "l2":
            dist = ((qr[:, None, :] - kr[None, :, :]) ** 2).sum(-1)
        elif metric == "maha_diag":
            dist = (a["maha"][h] * (qr[:, None, :] - kr[None, :, :]) ** 2).sum(-1)
        elif metric == "cosine":
            dist = 1.0 - F.normalize(qr, dim=-1, eps=1e-12) @ F.normalize(kr, dim=-1, eps=1e-12).T
        else:
            raise ValueError(f"unknown metric {metric!r}")
        s = -a["alpha"][h] * dist  # [T (query), T (key)]
        allowed = causal.clone()
        if cfg["use_balls"]:
            dist_o = torch.linalg.vector_norm(kh_pre - a["origin"][h], dim=-1)
            inside = dist_o <= a["radius"][h]  # [T]
            STATS["ball_margin"] = min(STATS["ball_margin"], ((dist_o - a["radius"][h]).abs() / a["radius"][h]).min().item())
            STATS["keys_in_ball"] += int(inside.sum().item())
            STATS["keys_tested"] += T
            allowed = allowed & (inside[None, :] | eye)  # the diagonal is never masked
        s = s.masked_fill(~allowed, float("-inf"))
        heads.append(torch.softmax(s, dim=-1) @ v[:, g])
    return torch.cat(heads, dim=-1) @ a["o"].T


def moa_block(x, w, cfg):
    eps = cfg["layer_norm_eps"]
    u = layer_norm(x, w["ln1.w"], w["ln1.b"], eps)
    T, D = u.shape
    # discrepancy signal ‖u_t − u_{t−1}‖ / (‖u_t‖ + 1e-6), 0 at position 0 (docs/architecture.md)
    disc = torch.zeros(T, dtype=u.dtype)
    if T > 1:
        disc[1:] = torch.linalg.vector_norm(u[1:] - u[:-1], dim=-1) / (torch.linalg.vector_norm(u[1:], dim=-1) + 1e-6)
    y = {
        "conv": gelu(causal_depthwise(u, w["conv.dw.w"], w["conv.dw.b"])) @ w["conv.pw.w"].T,
        "mha": metric_attention(u, w["mha"], cfg, cfg["attn_heads"], cfg["attn_heads"], disc),
        "mix": gelu(u @ w["mix.w1"].T + w["mix.b1"]) @ w["mix.w2"].T + w["mix.b2"],
        "mqa": metric_attention(u, w["mqa"], cfg, cfg["mqa_q_heads"], 1, disc),
    }
    # token router: top-k of softmax(ℓ/τ), renormalised; sorted() is stable, so ties go to the lower path index
    hr = gelu(u @ w["router.w1"].T + w["router.b1"])
    probs = torch.softmax((hr @ w["router.w2"].T + w["router.b2"]) / cfg["router_temperature"], dim=-1)  # [T, 4]
    weights = torch.zeros_like(probs)
    for t in range(T):
        full = sorted(range(4), key=lambda p: -probs[t, p].item())
        ranked = full[: cfg["router_topk"]]
        if cfg["router_topk"] < 4:
            gap = (probs[t, full[cfg["router_topk"] - 1]] - probs[t, full[cfg["router_topk"]]]).item()
            STATS["router_gap"] = min(STATS["router_gap"], gap)
        sel = probs[t, ranked]
        weights[t, ranked] = sel / sel.sum()
    z = torch.zeros_like(u)
    for p, name in enumerate(PATHS):
        yp = y[name]
        if cfg["enable_feature_gates"]:  # FiLM: y ⊙ (1 + Γ_p hr) + Β_p hr
            yp = yp * (1 + hr @ w["film.gamma"][p * D : (p + 1) * D].T) + hr @ w["film.beta"][p * D : (p + 1) * D].T
        if cfg["enable_router_gates"]:  # b_p = 2σ(c_p·u + c0_p)
            yp = yp * (2 * torch.sigmoid(u @ w["gate.w"][p] + w["gate.b"][p]))[:, None]
        z = z + weights[:, p : p + 1] * yp
    x = x + w["ls_mix"] * z
    # HyperFFN: SwiGLU, SepConv, LowRank under a softmax branch router (M.9)
    vv = layer_norm(x, w["ln2.w"], w["ln2.b"], eps)
    pi = torch.softmax((vv @ w["ffn.router"].T) / cfg["branch_temperature"], dim=-1)  # [T, 3]
    if cfg["branch_topk"] < 3:
        keep = torch.zeros_like(pi)
        for t in range(T):
            full = sorted(range(3), key=lambda b: -pi[t, b].item())
            ranked = full[: cfg["branch_topk"]]
            gap = (pi[t, full[cfg["branch_topk"] - 1]] - pi[t, full[cfg["branch_topk"]]]).item()
            STATS["branch_gap"] = min(STATS["branch_gap"], gap)
            keep[t, ranked] = pi[t, ranked] / pi[t, ranked].sum()
        pi = keep
    swiglu = (F.silu(vv @ w["ffn.gate"].T) * (vv @ w["ffn.up"].T)) @ w["ffn.down"].T
    sep = gelu(causal_depthwise(vv @ w["ffn.conv_in"].T, w["ffn.conv_dw.w"], w["ffn.conv_dw.b"])) @ w["ffn.conv_out"].T
    low = gelu(vv @ w["ffn.lr_down"].T) @ w["ffn.lr_up"].T
    ffn = pi[:, 0:1] * swiglu + pi[:, 1:2] * sep + pi[:, 2:3] * low
    return x + w["ls_ffn"] * ffn


# ---- config and weights ----

CONFIG_DEFAULTS = {
    "router_topk": 2,
    "router_temperature": 1.0,
    "branch_topk": 3,
    "branch_temperature": 1.0,
    "theta_base": 10000.0,
    "r_basis": 16,
    "enable_v_energy": True,
    "discrepancy_modulation": False,
    "enable_feature_gates": True,
    "enable_router_gates": True,
    "use_balls": False,
    "layer_norm_eps": 1e-5,
    "energy_amplification": math.pi,
    "conv_kernel": 5,
    "conv_mult": 2,
    "lr_rank": 32,
    "max_position_embeddings": 2048,
}


def read_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        raw = json.load(f)
    cfg = dict(CONFIG_DEFAULTS)
    cfg.update(raw)
    return cfg


def load_model(folder, dtype):
    cfg = read_config(folder)
    W = Weights(read_hf_weights(folder), dtype)
    D, L = cfg["dim"], cfg["num_layers"]
    K, R = cfg["conv_kernel"], cfg["r_basis"]
    embed = W.get(HF_NAMES["embed"], [cfg["vocab_size"], D])
    head = W.get(TIED_HEAD, optional=True)
    if head is not None and not torch.equal(head.reshape(embed.shape), embed):
        raise ValueError(f"{TIED_HEAD} differs from the embedding; MoA ties them")
    model = {"embed": embed,
             "norm_f.w": W.get(HF_NAMES["norm_f.w"], [D]), "norm_f.b": W.get(HF_NAMES["norm_f.b"], [D]),
             "layers": []}
    for i in range(L):
        lw = {}
        for ref, hf in HF_LAYER_NAMES.items():
            if ref in OPTIONAL_LAYER and not cfg[OPTIONAL_LAYER[ref]]:
                continue
            lw[ref] = W.get(hf.format(i=i))
        lw["conv.dw.w"] = lw["conv.dw.w"].reshape(D, K)  # Conv1d depthwise [D, 1, K] → [D, K]
        lw["ffn.conv_dw.w"] = lw["ffn.conv_dw.w"].reshape(-1, K)
        for att, H, G in (("mha", cfg["attn_heads"], cfg["attn_heads"]), ("mqa", cfg["mqa_q_heads"], 1)):
            d = D // H
            # reference name -> shape, for the tensors this config needs (H query heads, G kv heads)
            shapes = {"q": [H * d, D], "k": [G * d, D], "v": [G * d, D], "o": [D, H * d], "alpha": [H]}
            if cfg["metric"] == "maha_diag":
                shapes["maha"] = [H, d]
            if cfg["use_balls"]:
                shapes.update(origin=[H, d], radius=[H])
            if R > 0:
                shapes.update(rope_a=[G, d // 2, R], rope_b=[G, d // 2, R])
                if cfg["enable_v_energy"]:
                    shapes.update(energy_c=[G, R], energy_g=[G, R])
            if cfg["discrepancy_modulation"]:
                shapes["disc"] = [G]
            a = {}
            for ref, shape in shapes.items():
                t = W.get(HF_ATTN_NAMES[ref].format(i=i, a=att), shape)
                a[ref] = POSITIVE[ref](t) if ref in POSITIVE else t
            lw[att] = a
        model["layers"].append(lw)
    return cfg, model, W.unused()


def forward(cfg, model, tokens):
    """All-position logits [T, V] of one token sequence."""
    T = len(tokens)
    if T > cfg.get("max_position_embeddings", T):
        raise ValueError(f"{T} tokens exceed max_position_embeddings {cfg['max_position_embeddings']}")
    x = model["embed"][torch.tensor(tokens, dtype=torch.long)]
    for lw in model["layers"]:
        x = moa_block(x, lw, cfg)
    x = layer_norm(x, model["norm_f.w"], model["norm_f.b"], cfg["layer_norm_eps"])
    return x @ model["embed"].T  # tied head


def finite_or_none(x):
    return x if math.isfinite(x) else None  # JSON has no Infinity (no such decision was taken)


def cmd_logits(args):
    dtype = torch.float64 if args.float64 else torch.float32
    cfg, model, unused = load_model(args.hf, dtype)
    if unused:
        raise ValueError(f"tensors the reference does not know: {', '.join(unused)}")
    with open(args.tokens) as f:
        seqs = json.load(f)
    with open(args.out, "wb") as f:
        for seq in seqs:
            with torch.no_grad():
                lg = forward(cfg, model, seq)
            f.write(lg.detach().numpy().astype("<f8" if args.write_float64 else "<f4").tobytes())
    print(json.dumps({"sequences": len(seqs), "tokens": [len(s) for s in seqs], "vocab": cfg["vocab_size"],
                      "dtype": "float64" if args.float64 else "float32", "metric": cfg["metric"],
                      "min_router_topk_gap": finite_or_none(STATS["router_gap"]),
                      "min_branch_topk_gap": finite_or_none(STATS["branch_gap"]),
                      "min_ball_margin_rel": finite_or_none(STATS["ball_margin"]),
                      "keys_in_ball": f'{STATS["keys_in_ball"]}/{STATS["keys_tested"]}'}))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits", help="all-position logits of token sequences")
    lg.add_argument("--hf", required=True, help="HF folder (config.json + *.safetensors)")
    lg.add_argument("--tokens", required=True, help="JSON file: a list of token-id lists")
    lg.add_argument("--out", required=True, help="output file of raw little-endian logits")
    lg.add_argument("--float64", action="store_true", help="compute in float64 (default float32)")
    lg.add_argument("--write-float64", action="store_true", help="write float64 (default: float32, rounded)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "logits":
        cmd_logits(args)


if __name__ == "__main__":
    main(sys.argv[1:])

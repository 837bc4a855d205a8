"""Self-consistency checks of the PyTorch reference's new parts, in float64, against identities that
ARCHITECTURES.md states independently of any implementation (run by make_golden.sh, not by npm test):

  xm-parallel     the mLSTM recurrence (m_0 = -inf) equals the parallel form (§2.6, "verified 3e-14")
  tm-closed-form  memory_step over a segment equals the closed form M_C, S_C of §2.8-P (§2.19)
  moe-topk        select_experts equals torch.topk on tie-free scores, and prefers the lower id on a tie
  loop-half-n1    truncation "half" at one iteration gives the full gradient (⌈1/2⌉ = 1)
  loop-half-n3    and at three iterations differs from it (the first iteration carries no gradient)

  /usr/bin/python3 scripts/reference/selfcheck_torch.py [--model test/golden/chimera-all/model.gguf]
Prints one line per check and a JSON summary; exits 1 if any fails.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import blocks_torch as blocks  # noqa: E402
import chimera_torch as ct  # noqa: E402
import mixers_torch as mixers  # noqa: E402

torch.set_default_dtype(torch.float64)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def check_xm_parallel(gen):
    B, T, H, d = 2, 19, 3, 8
    q = torch.randn(B, T, H, d, generator=gen) / d ** 0.5
    k, v = torch.randn(B, T, H, d, generator=gen), torch.randn(B, T, H, d, generator=gen)
    cap = 15.0
    ig = cap * torch.tanh(3 * torch.randn(B, T, H, generator=gen) / cap)     # includes strongly negative ĩ
    lf = torch.nn.functional.logsigmoid(cap * torch.tanh(3 * torch.randn(B, T, H, generator=gen) / cap))
    return rel(mixers.mlstm_recurrent(q, k, v, ig, lf), mixers.mlstm_parallel(q, k, v, ig, lf)), 1e-10


def check_tm_closed_form(gen):
    """M_C = Bt_C M_0 + c_S S_0 − Σ_r c_r g_r,  S_C = E_C S_0 − Σ_r (E_C/E_r) θ_r g_r  (§2.8-P), with
    E_i = Π_{j≤i} η_j, Bt_i = Π_{j≤i} (1−α_j), c_S = Σ_i (Bt_C/Bt_i) E_i, c_r = θ_r Σ_{i≥r} (Bt_C/Bt_i)(E_i/E_r)."""
    n, P = 7, 12
    alpha = torch.rand(n, generator=gen) * 0.5
    eta = 0.5 + 0.5 * torch.rand(n, generator=gen)
    theta = 0.1 * torch.rand(n, generator=gen)
    g = torch.randn(n, P, generator=gen)
    M0, S0 = torch.randn(P, generator=gen), torch.randn(P, generator=gen)
    M, S = M0, S0
    for i in range(n):
        M, S = mixers.memory_step(M, S, g[i], alpha[i], eta[i], theta[i])
    E, Bt = torch.cumprod(eta, 0), torch.cumprod(1 - alpha, 0)
    cS = (Bt[-1] / Bt * E).sum()
    c = torch.stack([theta[r] * (Bt[-1] / Bt[r:] * E[r:] / E[r]).sum() for r in range(n)])
    MC = Bt[-1] * M0 + cS * S0 - (c[:, None] * g).sum(0)
    SC = E[-1] * S0 - ((E[-1] / E * theta)[:, None] * g).sum(0)
    return max(rel(M, MC), rel(S, SC)), 1e-12


def check_moe_topk(gen):
    v = torch.randn(64, 6, generator=gen)
    ours = blocks.select_experts(v, 2)
    ref = torch.sort(torch.topk(v, 2, dim=-1).indices, dim=-1).values
    tie = blocks.select_experts(torch.tensor([[0.5, 0.9, 0.9, 0.9]]), 2)
    ok = torch.equal(ours, ref) and tie.tolist() == [[1, 2]]
    return (0.0 if ok else 1.0), 0.5


def loop_grads(gguf, loops, truncation):
    model = ct.Chimera(gguf, quant=False, dtype=torch.float64, loops=loops, truncation=truncation)
    tokens, targets = ct.draw_batch(4, 1, 6, model.V)
    loss, _ = model.loss(torch.from_numpy(tokens), torch.from_numpy(targets))
    loss.backward()
    return {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in zip(model.names, model.p.values())}


def check_loop_half(gguf, loops):
    half, full = loop_grads(gguf, loops, "half"), loop_grads(gguf, loops, "full")
    return max(rel(half[n], full[n]) for n in half if full[n].abs().max() > 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="test/golden/chimera-all/model.gguf")
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(11)
    gguf = ct.GGUFFile(args.model)
    results = {}
    for name, fn in (("xm-parallel", check_xm_parallel), ("tm-closed-form", check_tm_closed_form),
                     ("moe-topk", check_moe_topk)):
        err, tol = fn(gen)
        results[name] = (err, err <= tol, f"max rel err {err:.2e} (tol {tol:g})")
    e1 = check_loop_half(gguf, 1)
    results["loop-half-n1"] = (e1, e1 <= 1e-12, f"half vs full at 1 loop: max rel diff {e1:.2e} (want 0)")
    e3 = check_loop_half(gguf, 3)
    results["loop-half-n3"] = (e3, e3 >= 1e-3, f"half vs full at 3 loops: max rel diff {e3:.2e} (want > 1e-3)")
    for name, (_, ok, msg) in results.items():
        print(f"  {name:16s} {'ok  ' if ok else 'FAIL'} {msg}")
    print(json.dumps({"selfcheck": {n: bool(ok) for n, (_, ok, _) in results.items()}}))
    sys.exit(0 if all(ok for _, ok, _ in results.values()) else 1)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

"""torch path of :mod:`theorylab.icl.learners`: the two in-context learners, their seeded
initialization and their training on linear-regression prompts (CPU/CUDA, differentiable).

Every function takes prompts X (B, k, d), labels y (B, k), queries Xq (B, Q, d) and the prefix
length ``plen`` (Q,) of each query (1 <= plen <= k: the query sees examples 0..plen-1), and
returns predictions (B, Q).  :func:`transformer_forward` must match ``transformer_ref`` and
:func:`lsa_forward_prefix` must match ``lsa_model_ref`` (both in :mod:`theorylab.icl.learners`).
"""

from __future__ import annotations

import math

import torch

from ..backends import one_torch_thread


# ---------------------------------------------------------------------------------------
# initialization (a torch.Generator, never the global RNG)
# ---------------------------------------------------------------------------------------
def init_params(kind: str, d: int, *, layers: int, width: int, heads: int, generator, init_scale: float,
                dtype=torch.float64):
    """Parameters as a dict of leaf tensors (requires_grad) drawn from ``generator``."""

    def normal(*shape, std):
        return torch.randn(*shape, generator=generator, dtype=dtype) * std

    p = {}
    if kind == "lsa":  # W_Q, W_K, W_V per layer, (d+1, d+1), small so training starts near 0
        e = d + 1
        for layer in range(layers):
            for name in ("WQ", "WK", "WV"):
                p[f"{name}{layer}"] = normal(e, e, std=init_scale / math.sqrt(e))
    else:  # transformer: token features [x; y; is_query] (d + 2) -> width
        s = 1.0 / math.sqrt(width)
        p["W_in"], p["b_in"] = normal(d + 2, width, std=1.0 / math.sqrt(d + 2)), torch.zeros(width, dtype=dtype)
        for layer in range(layers):
            for name in ("ln1", "ln2"):
                p[f"{name}_g{layer}"] = torch.ones(width, dtype=dtype)
                p[f"{name}_b{layer}"] = torch.zeros(width, dtype=dtype)
            for name in ("Wq", "Wk", "Wv"):
                p[f"{name}{layer}"] = normal(width, width, std=s)
            p[f"Wo{layer}"] = normal(width, width, std=s / math.sqrt(2 * layers))
            p[f"W1_{layer}"], p[f"b1_{layer}"] = normal(width, 2 * width, std=s), torch.zeros(2 * width, dtype=dtype)
            p[f"W2_{layer}"] = normal(2 * width, width, std=1.0 / math.sqrt(2 * width) / math.sqrt(2 * layers))
            p[f"b2_{layer}"] = torch.zeros(width, dtype=dtype)
        p["lnf_g"], p["lnf_b"] = torch.ones(width, dtype=dtype), torch.zeros(width, dtype=dtype)
        p["W_out"], p["b_out"] = normal(width, 1, std=s * init_scale), torch.zeros(1, dtype=dtype)
    for v in p.values():
        v.requires_grad_(True)
    return p


# ---------------------------------------------------------------------------------------
# forwards
# ---------------------------------------------------------------------------------------
def _ln(h, g, b, eps=1e-5):
    mu = h.mean(-1, keepdim=True)
    var = ((h - mu) ** 2).mean(-1, keepdim=True)
    return (h - mu) / torch.sqrt(var + eps) * g + b


def _mlp(p, layer, h):
    m = _ln(h, p[f"ln2_g{layer}"], p[f"ln2_b{layer}"]) @ p[f"W1_{layer}"] + p[f"b1_{layer}"]
    return torch.relu(m) @ p[f"W2_{layer}"] + p[f"b2_{layer}"]


def attention_mask(k: int, plen, device=None):
    """(k + Q, k + 1) bool: row t may attend to context token i (columns 0..k-1) and to itself
    (column k).  Context token t: i <= t (causal; itself is column t).  Query j: i < plen[j], and itself."""
    Q = plen.shape[0]
    i = torch.arange(k, device=device)
    ctx = torch.cat([i[None, :] <= i[:, None], torch.zeros(k, 1, dtype=torch.bool, device=device)], 1)
    qry = torch.cat([i[None, :] < plen[:, None].to(device), torch.ones(Q, 1, dtype=torch.bool, device=device)], 1)
    return torch.cat([ctx, qry], 0)


def transformer_forward(p, X, y, Xq, plen, *, layers: int, heads: int):
    """Pre-LN softmax transformer over [context; queries] with :func:`attention_mask`: context
    token t attends to context tokens <= t (causal); a query attends to the context tokens
    before its prefix length and to itself; queries never see each other."""
    B, k, d = X.shape
    Q = Xq.shape[1]
    zc = torch.cat([X, y[..., None], X.new_zeros(B, k, 1)], -1)  # (B, k, d+2): [x; y; 0]
    zq = torch.cat([Xq, Xq.new_zeros(B, Q, 1), Xq.new_ones(B, Q, 1)], -1)  # (B, Q, d+2): [x; 0; 1]
    h = torch.cat([zc, zq], 1) @ p["W_in"] + p["b_in"]  # (B, N, w), N = k + Q
    N, w = h.shape[1], h.shape[2]
    dh = w // heads
    allowed = attention_mask(k, plen, X.device)  # (N, k + 1)

    def split(t):  # (B, N, w) -> (B, H, N, dh)
        return t.reshape(B, N, heads, dh).transpose(1, 2)

    for layer in range(layers):
        a = _ln(h, p[f"ln1_g{layer}"], p[f"ln1_b{layer}"])
        q_, k_, v_ = (split(a @ p[f"{n}{layer}"]) for n in ("Wq", "Wk", "Wv"))  # (B, H, N, dh)
        s_ctx = q_ @ k_[:, :, :k].transpose(-1, -2)  # (B, H, N, k): every token -> context keys
        s_self = (q_ * k_).sum(-1, keepdim=True)  # (B, H, N, 1): every token -> itself
        att = torch.softmax(torch.cat([s_ctx, s_self], -1).masked_fill(~allowed, float("-inf")) / math.sqrt(dh), -1)
        o = att[..., :k] @ v_[:, :, :k] + att[..., k:] * v_  # (B, H, N, dh)
        h = h + o.transpose(1, 2).reshape(B, N, w) @ p[f"Wo{layer}"]
        h = h + _mlp(p, layer, h)
    return (_ln(h[:, k:], p["lnf_g"], p["lnf_b"]) @ p["W_out"] + p["b_out"])[..., 0]  # (B, Q)


def lsa_forward_prefix(p, X, y, Xq, plen, *, layers: int):
    """Linear self-attention, ``layers`` layers with their own W_Q, W_K, W_V, over tokens
    [x_i; y_i] (context) and [x_q; 0] (queries); a query of prefix length n uses the first n
    context tokens as keys and values (they attend to each other, as in ``lsa_forward``);
    prediction = −(last entry of the query token).

    Queries are never keys, so each query runs with its own copy of the context, rows i >= n
    zeroed: a zero row stays zero through every layer and adds nothing to Σ (W_V z_i)(W_K z_i)ᵀ."""
    B, k, d = X.shape
    Q = Xq.shape[1]
    keep = (torch.arange(k, device=X.device)[None, :] < plen[:, None].to(X.device)).to(X.dtype)  # (Q, k)
    ctx = torch.cat([X, y[..., None]], -1)[:, None] * keep[None, :, :, None]  # (B, Q, k, d+1)
    qz = torch.cat([Xq, Xq.new_zeros(B, Q, 1)], -1)[:, :, None]  # (B, Q, 1, d+1)
    Z = torch.cat([ctx, qz], 2)  # (B, Q, k + 1, d+1)
    n = plen.to(device=X.device, dtype=X.dtype)[None, :, None, None]  # (1, Q, 1, 1)
    for layer in range(layers):
        WQ, WK, WV = p[f"WQ{layer}"], p[f"WK{layer}"], p[f"WV{layer}"]
        c = Z[:, :, :k]
        KV = (c @ WK.T).transpose(-1, -2) @ (c @ WV.T)  # (B, Q, e, e): Σ_i (W_K z_i)(W_V z_i)ᵀ
        Z = Z + (Z @ WQ.T) @ KV / n
    return -Z[:, :, k, d]


def forward(kind, p, X, y, Xq, plen, *, layers, heads):
    if kind == "lsa":
        return lsa_forward_prefix(p, X, y, Xq, plen, layers=layers)
    return transformer_forward(p, X, y, Xq, plen, layers=layers, heads=heads)


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------
def sample_prompts(generator, batch, k, d, noise, tau, dtype=torch.float64):
    """x, x_q ~ N(0, I), w ~ N(0, τ²I), y = Xw + σε; one query per prefix length 1..k."""
    g = dict(generator=generator, dtype=dtype)
    w = torch.randn(batch, d, **g) * tau
    X = torch.randn(batch, k, d, **g)
    Xq = torch.randn(batch, k, d, **g)
    y = torch.einsum("bkd,bd->bk", X, w) + noise * torch.randn(batch, k, **g)
    yq = torch.einsum("bkd,bd->bk", Xq, w) + noise * torch.randn(batch, k, **g)
    return X, y, Xq, yq


def train(kind, *, d, k, noise, tau, steps, batch, lr, seed, layers, width, heads, init_scale, shuffle_labels,
          dtype=torch.float32):
    """Adam on the mean squared error of one query per prefix length; returns (params, losses).

    All randomness comes from one ``torch.Generator`` seeded with ``seed`` (initialization,
    then each step's prompts and label permutation, in a fixed order).  Training runs in
    ``dtype`` (float32: twice the speed of float64 on CPU); the parameters come back as float64
    (exact upcasts), the precision every evaluation runs in.  The parameters are views of one
    flat vector, so Adam (β = 0.9, 0.999; warm-up over 20 steps, then a linear decay to 0.1 lr)
    and the gradient-norm clipping (at 1) are a handful of vector operations per step.  It runs on
    one torch thread (restored afterwards): the same weights whatever the caller's thread count."""
    with one_torch_thread():
        return _train(kind, d=d, k=k, noise=noise, tau=tau, steps=steps, batch=batch, lr=lr, seed=seed, layers=layers,
                      width=width, heads=heads, init_scale=init_scale, shuffle_labels=shuffle_labels, dtype=dtype)


def _train(kind, *, d, k, noise, tau, steps, batch, lr, seed, layers, width, heads, init_scale, shuffle_labels, dtype):
    g = torch.Generator().manual_seed(int(seed))
    p0 = init_params(kind, d, layers=layers, width=width, heads=heads, generator=g, init_scale=init_scale, dtype=dtype)
    flat = torch.cat([v.detach().reshape(-1) for v in p0.values()]).requires_grad_(True)
    offsets, o = {}, 0
    for name, v in p0.items():
        offsets[name] = (o, v.shape)
        o += v.numel()

    def views():
        return {name: flat[a:a + math.prod(shape)].view(shape) for name, (a, shape) in offsets.items()}

    m1, m2 = torch.zeros_like(flat), torch.zeros_like(flat)
    plen = torch.arange(1, k + 1)
    losses = []
    for t in range(steps):
        X, y, Xq, yq = sample_prompts(g, batch, k, d, noise, tau, dtype)
        if shuffle_labels:  # labels of another prompt: no relation between x and y within a prompt
            perm = torch.randperm(batch, generator=g)
            y, yq = y[perm], yq[perm]
        loss = ((forward(kind, views(), X, y, Xq, plen, layers=layers, heads=heads) - yq) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, flat)
        with torch.no_grad():
            grad = grad * torch.clamp(1.0 / (grad.norm() + 1e-12), max=1.0)  # clip the norm at 1
            m1.mul_(0.9).add_(grad, alpha=0.1)
            m2.mul_(0.999).addcmul_(grad, grad, value=0.001)
            step = lr * min(1.0, (t + 1) / 20) * (1 - 0.9 * t / steps)
            denom = (m2 / (1 - 0.999 ** (t + 1))).sqrt_().add_(1e-8)
            flat.addcdiv_(m1, denom, value=-step / (1 - 0.9 ** (t + 1)))
        losses.append(float(loss.detach()))
    return {name: v.detach().to(torch.float64) for name, v in views().items()}, losses

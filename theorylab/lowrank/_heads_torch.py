"""Torch path of :mod:`theorylab.lowrank.heads`: :func:`attention_heads_torch` must match
``attention_heads_ref`` (CPU/CUDA, differentiable in X, y, Q, K)."""

from __future__ import annotations


def attention_heads_torch(X, y, Q, K):
    """head_h = Σ_i softmax_i(⟨Q_h y, K_h x_i⟩) x_i (torch.softmax shifts by the max)."""
    import torch

    Qb = Q.unsqueeze(-4) if Q.ndim == X.ndim else Q  # sweep heads broadcast over samples
    Kb = K.unsqueeze(-4) if K.ndim == X.ndim else K
    qy = torch.einsum("...hrd,...d->...hr", Qb, y)  # (..., H, r)
    kx = torch.einsum("...hrd,...nd->...hnr", Kb, X)  # (..., H, N, r)
    w = torch.softmax(torch.einsum("...hr,...hnr->...hn", qy, kx), dim=-1)  # (..., H, N)
    return torch.einsum("...hn,...nd->...hd", w, X)


def train_heads_torch(X, y, Q0, K0, *, train: int, steps: int, lr: float) -> float:
    """Held-out error after full-batch Adam on Q, K (H, r, d) and O (H, d, d) (O starts at 0).

    Adam written out (β1 = 0.9, β2 = 0.999, 1e-8, bias-corrected), so no optimizer module is
    imported; deterministic: the initial heads come in as arrays, full batches, float64."""
    import torch

    from ..backends import to_torch, warm_torch_cpu_math

    warm_torch_cpu_math()
    Xt, yt = to_torch(X), to_torch(y)
    f = torch.take_along_dim(Xt, (Xt @ yt[..., None])[..., 0].argmax(-1)[..., None, None], dim=-2)[..., 0, :]
    Q, K = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (Q0, K0))
    H, d = Q.shape[0], Q.shape[-1]
    O = torch.zeros(H, d, d, dtype=torch.float64, requires_grad=True)
    params = [Q, K, O]
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]

    def err(sl):
        heads = attention_heads_torch(Xt[sl], yt[sl], Q, K)  # (T, H, d)
        return ((torch.einsum("hed,thd->te", O, heads) - f[sl]) ** 2).sum(-1).mean()

    for t in range(1, steps + 1):
        grads = torch.autograd.grad(err(slice(0, train)), params)
        with torch.no_grad():
            for p, g, a, b in zip(params, grads, m1, m2):
                a.mul_(0.9).add_(g, alpha=0.1)
                b.mul_(0.999).addcmul_(g, g, value=0.001)
                p.sub_(lr * (a / (1 - 0.9**t)) / ((b / (1 - 0.999**t)).sqrt() + 1e-8))
    with torch.no_grad():
        return float(err(slice(train, None)))

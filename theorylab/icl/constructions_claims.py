"""Claim of :mod:`theorylab.icl.constructions`: check, negative control, sympy proof, registration.

* ``icl.lsa-layer-is-gd-step`` -- L linear self-attention layers with the weights of
  :func:`gd_lsa_weights` give the prediction of L GD steps.  Check, float64 under the 1e-10
  policy, against GD written out in this module (w ← (I − ηS/n)w + ηb/n with S = XᵀX, b = Xᵀy,
  per prefix n): :func:`lsa_predict` on every backend (ref, torch, torch:cuda), and
  :func:`gd_predict` on every backend (ref, numba, torch) both at the full prompt and at every
  prefix.  L in 1..4, η scaled so GD is stable (η·λmax(S/n) < 2).  Control: the layer
  averaged over every token, context and queries (1/(k + m) for 1/k), as mean-pooled
  attention would -- the prediction shrinks by k/(k + m).
* Proof (sympy): for symbolic d and k, the layer in block-matrix form maps tokens holding the
  residuals of any w_t (symbolic d x 1) to the residuals of w_{t+1} = w_t − η∇L(w_t): an
  induction step, so every L.  Also the library's :func:`lsa_layer_ref` and ``gd_ref`` run on
  sympy symbols at d = 2, k = 3, m = 1, L = 2.
"""

from __future__ import annotations

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from .constructions import BACKENDS as LSA_BACKENDS
from .constructions import gd_lsa_weights, lsa_layer_ref, lsa_predict, prompt_tokens
from .predictors import BACKENDS as GD_BACKENDS
from .predictors import gd_predict, gd_ref, make_inputs
from .predictors_claims import AKYUREK, _flat, draw_sizes

MODULE, TEST = "theorylab/icl/constructions.py", "tests/icl/test_constructions.py"


def gd_written_out(X, y, Xq, lr, steps):
    """GD from 0 per prefix n in matrix form: w ← (I − (η/n)S_n) w + (η/n) b_n; predictions (B, k, m)."""
    B, k, d = X.shape
    out = np.empty((B, k, Xq.shape[1]))
    for j in range(k):
        n = j + 1
        S = np.einsum("bni,bnj->bij", X[:, :n], X[:, :n])
        b = np.einsum("bni,bn->bi", X[:, :n], y[:, :n])
        A = np.eye(d) - (lr / n) * S
        w = np.zeros((B, d))
        for _ in range(steps):
            w = np.einsum("bij,bj->bi", A, w) + (lr / n) * b
        out[:, j] = np.einsum("bmd,bd->bm", Xq, w)
    return out


def lsa_over_all_tokens(X, y, Xq, lr, steps):
    """WRONG on purpose: the GD layer averaged over all k + m tokens instead of the k context tokens."""
    k, d = X.shape[-2:]
    Z = prompt_tokens(X, y, Xq)
    W = gd_lsa_weights(d, lr)
    N = Z.shape[-2]
    for _ in range(steps):  # lsa_layer_ref with 1/N in place of 1/k: each update scaled by k/N
        ctx = Z[..., :k, :]
        Z = Z + ((Z @ W[0].T) @ np.swapaxes(ctx @ W[1].T, -1, -2) @ (ctx @ W[2].T)) / N
    return -Z[..., k:, d]


def _lsa_verdict(rng, size, control):
    sz = draw_sizes(rng, size)
    p = make_inputs(rng, **sz, noise=float(rng.choice([0.0, 0.5])))
    X, y, Xq = _flat(p)
    steps = int(rng.integers(1, 5))
    lmax = max(float(np.linalg.eigvalsh(np.einsum("bni,bnj->bij", X[:, : j + 1], X[:, : j + 1]) / (j + 1)).max())
               for j in range(X.shape[1]))
    lr = float(rng.uniform(0.2, 1.6)) / lmax  # stable at every prefix: η λmax(S/n) < 2
    sizes = {**sz, "steps": steps, "lr": round(lr, 4)}
    ref = gd_written_out(X, y, Xq, lr, steps).reshape(p["y"].shape + (Xq.shape[1],))  # (..., k, m)
    if control:
        bad = lsa_over_all_tokens(p["X"], p["y"], p["Xq"], lr, steps)
        return identity_verdict(bad, ref[..., -1, :], dtype=np.float64, sizes=sizes,
                                what="LSA averaged over all tokens vs GD")
    parts = {}
    for b in check_backends(LSA_BACKENDS):
        out = call_backend(lsa_predict, b, p["X"], p["y"], p["Xq"], lr, steps)
        parts[f"lsa_predict/{b}"] = identity_verdict(out, ref[..., -1, :], dtype=np.float64, backend=b, sizes=sizes,
                                                     what=f"lsa_predict[{b}] ({steps} layers) vs {steps} GD steps")
    for b in check_backends(GD_BACKENDS):
        out = call_backend(gd_predict, b, p["X"], p["y"], p["Xq"], lr, steps, prefixes=True)
        last = call_backend(gd_predict, b, p["X"], p["y"], p["Xq"], lr, steps)
        parts[f"gd_predict/{b}"] = Verdict.combine({
            "prefixes": identity_verdict(out, ref, dtype=np.float64, backend=b, sizes=sizes,
                                         what=f"gd_predict[{b}] every prefix vs GD written out"),
            "last": identity_verdict(last, ref[..., -1, :], dtype=np.float64, backend=b, sizes=sizes,
                                     what=f"gd_predict[{b}] vs GD written out")}, sizes=sizes)
    return Verdict.combine(parts, sizes=sizes)


def lsa_block_step(*, normalize_by_extra: int = 0) -> bool:
    """Induction step in block-matrix algebra for symbolic d, k: one layer maps the residual tokens
    of w_t to those of w_{t+1}.  ``normalize_by_extra`` > 0 averages over k + extra tokens (the control)."""
    import sympy as sp
    from sympy import BlockMatrix, Identity, MatrixSymbol, ZeroMatrix, block_collapse

    d, k = sp.symbols("d k", integer=True, positive=True)
    eta = sp.Symbol("eta", positive=True)
    X, y = MatrixSymbol("X", k, d), MatrixSymbol("y", k, 1)
    xq, w = MatrixSymbol("x_q", 1, d), MatrixSymbol("w", d, 1)
    ctx = BlockMatrix([[X, y - X * w]])  # context rows [x_i, y_i − x_iᵀw_t]
    qry = BlockMatrix([[xq, -xq * w]])  # query row [x_q, −x_qᵀw_t]
    WQ = BlockMatrix([[Identity(d), ZeroMatrix(d, 1)], [ZeroMatrix(1, d), ZeroMatrix(1, 1)]])
    WV = BlockMatrix([[ZeroMatrix(d, d), ZeroMatrix(d, 1)], [ZeroMatrix(1, d), -eta * Identity(1)]])

    def layer(z):  # z + (1/n) (z W_Qᵀ)(ctx W_Kᵀ)ᵀ(ctx W_Vᵀ), W_K = W_Q
        return block_collapse(z + (1 / (k + normalize_by_extra)) * (z * WQ.T) * (ctx * WQ.T).T * (ctx * WV.T))

    w1 = w - eta * (1 / k) * X.T * (X * w - y)  # one GD step on 1/(2k) Σ (wᵀx − y)²
    out_c, out_q = layer(ctx), layer(qry)
    zero = lambda e: sp.simplify(sp.expand(e)) == 0 or sp.simplify(sp.expand(e)).is_ZeroMatrix  # noqa: E731
    return bool(zero(out_c.blocks[0, 0] - X) and zero(out_q.blocks[0, 0] - xq)
                and zero(out_c.blocks[0, 1] - (y - X * w1)) and zero(out_q.blocks[0, 1] - (-xq * w1)))


def lsa_library_symbolic(d=2, k=3, m=1, L=2) -> bool:
    """The library's lsa_layer_ref (L times) and gd_ref on sympy symbols agree exactly."""
    import sympy as sp

    sym = lambda name, shape: np.array(sp.symbols(f"{name}0:{int(np.prod(shape))}", real=True),  # noqa: E731
                                       dtype=object).reshape(shape)
    X, y, Xq, eta = sym("x", (1, k, d)), sym("y", (1, k)), sym("q", (1, m, d)), sp.Symbol("eta", positive=True)
    W = [np.array(Wi.tolist(), dtype=object) for Wi in gd_lsa_weights(d, 1.0)]
    W[2] = W[2] * eta  # W_V[d, d] = −η
    Z = prompt_tokens(X, y, Xq)
    for _ in range(L):
        Z = lsa_layer_ref(Z, *W, k)
    gd = gd_ref(X, y, Xq, eta, L)[:, -1]  # (1, m)
    return all(sp.expand(a + b) == 0 for a, b in zip(np.ravel(Z[:, k:, d]), np.ravel(gd)))


def lsa_proof() -> Proof:
    general, concrete = lsa_block_step(), lsa_library_symbolic()
    return Proof(general and concrete,
                 "sympy: one LSA layer with W_Q = W_K = [[I,0],[0,0]], W_V = [[0,0],[0,−η]] maps the residual tokens "
                 "[x_i, y_i − x_iᵀw_t], [x_q, −x_qᵀw_t] to those of w_{t+1} = w_t − η∇L(w_t) (induction step, so L layers "
                 f"= L steps): {general}; library lsa_layer_ref x2 = gd_ref(steps=2) on symbols: {concrete}",
                 scope="general: symbolic d and k, every L (induction on the layer), retyped formula (the layer in "
                       "sympy block-matrix algebra); plus library reference (lsa_layer_ref, gd_ref) at d=2, k=3, m=1, L=2")


register(Claim(
    id="icl.lsa-layer-is-gd-step", paper=AKYUREK, kind="identity",
    statement="A linear self-attention layer z_j ← z_j + (1/k) Σ_i (W_V z_i)(W_K z_i)ᵀ(W_Q z_j) over tokens z_i = [x_i; y_i], "
    "z_q = [x_q; 0] with W_Q = W_K = [[I,0],[0,0]], W_V = [[0,0],[0,−η]] outputs −ŷ_q with ŷ_q = x_qᵀ(η/k)Xᵀy, the "
    "prediction of one GD step from w_0 = 0 on L(w) = 1/(2k)Σ(wᵀx_i − y_i)²; L stacked layers give L steps "
    "(weights of von Oswald et al. 2023, arXiv:2212.07677).",
    check=lambda rng, size="quick": _lsa_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _lsa_verdict(rng, size, True),
    proof=lsa_proof, experiment="icl_constructions", module=MODULE, test=TEST, samples=4,
    controls="the layer averaged over all k + m tokens instead of the k context tokens"))

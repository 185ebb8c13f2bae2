"""General-size sympy proofs for scalar linear recurrences: an induction step with symbolic t.

Both the selective scan (per channel and state index, log-decay ell_k = Δ_k A[n]) and SSD
(per head and state entry, ell_k = log a_k) are, entry by entry of the state, the scalar
recurrence

    h_t = exp(ell_t) h_{t-1} + u_t,        h_{-1} = 0,

and their attention (matrix) forms claim h_t = W(t) with

    W(T) = Σ_{s=0..T} exp(Σ_{k=s+1..T} ell_k) u_s.

Everything is symbolic in the *length*: t, s and the chunk start σ are sympy integer symbols,
ell and u undefined functions, sums ``sympy.Sum`` with symbolic limits.  The proof:

1. (segment sums) Σ_{k=s+1..T} ell_k = F(T) - F(s) with the prefix sum F(T) = Σ_{k=0..T} ell_k,
   and ell_t = F(t) - F(t-1) -- exact arithmetic (numerically it is the unstable form; here it
   only names the decays): checked by sympy with s, t, T symbolic.  So W(T) =
   Σ_s exp(F(T) - F(s)) u_s with F an arbitrary (undefined) function.
2. (base) W(-1) = 0 = h_{-1}: an empty sum.
3. (step) exp(ell_t) W(t-1) + u_t = W(t), with t symbolic: the u_t term is the s = t term of
   W(t) (a one-term sum whose decay is exp(0) = 1), and sympy joins the sums.
   Steps 2-3 prove h_t = W(t) for every t: for every length.
4. (chunks) for a chunk start σ <= t: W(t) = Σ_{s=σ..t} exp(F(t) - F(s)) u_s +
   exp(F(t) - F(σ-1)) W(σ-1) -- the diagonal block plus the decayed state entering the chunk,
   for every chunk structure (σ, t symbolic; chunks of any, even varying, sizes).

``first=0`` shifts the segment to Σ_{k=s..T} (one step too many, a negative control's
off-by-one): step 3's one-term sum is then exp(ell_t) u_t, not u_t, and the proof fails.
"""

from __future__ import annotations

__all__ = ["symbols", "decay", "W", "segment_sum_lemma", "induction_step", "chunk_split"]


def symbols():
    """(t, s, k, sigma, ell, u, F): integer symbols and undefined functions."""
    import sympy as sp

    t, s, k, sigma = sp.symbols("t s k sigma", integer=True)
    return t, s, k, sigma, sp.Function("ell"), sp.Function("u"), sp.Function("F")


def decay(F, lo, hi, first=1):
    """exp(Σ_{k=lo+first..hi} ell_k) = exp(F(hi) - F(lo + first - 1))."""
    import sympy as sp

    return sp.exp(F(hi) - F(lo + first - 1))


def W(F, u, s, T, first=1):
    """The matrix form's state: Σ_{s=0..T} exp(Σ_{k=s+first..T} ell_k) u_s."""
    import sympy as sp

    return sp.Sum(decay(F, s, T, first) * u(s), (s, 0, T))


def _zero(expr) -> bool:
    import sympy as sp

    return sp.simplify(expr) == 0


def segment_sum_lemma() -> tuple[bool, str]:
    """Σ_{k=s+1..T} ell_k = F(T) - F(s) and ell_t = F(t) - F(t-1), F(T) = Σ_{k=0..T} ell_k."""
    import sympy as sp

    t, s, k, _, ell, _, _ = symbols()
    T = sp.Symbol("T", integer=True)
    F = lambda T: sp.Sum(ell(k), (k, 0, T))  # noqa: E731
    one = sp.Sum(ell(k), (k, t, t))  # the one-term segment (t-1, t]
    ok = (_zero(F(T) - (sp.Sum(ell(k), (k, s + 1, T)) + F(s)))  # F(T) = F(s) + Σ_{k=s+1..T} ell_k
          and _zero(F(t) - (one + F(t - 1))) and _zero(one.doit() - ell(t)))
    return ok, "segment sums = differences of prefix sums (symbolic limits)"


def induction_step(first=1) -> tuple[bool, str]:
    """Base W(-1) = 0 and the step exp(ell_t) W(t-1) + u_t = W(t) for symbolic t."""
    import sympy as sp

    t, s, _, _, _, u, F = symbols()
    if not _zero(W(F, u, s, -1, first).doit()):
        return False, "base case W(-1) = 0 fails"
    last = sp.Sum(decay(F, s, t, first) * u(s), (s, t, t))  # the s = t term of W(t)
    if not _zero(last.doit() - u(t)):
        return False, f"the s = t term of W(t) is {sp.simplify(last.doit())}, not u_t: the step does not close"
    step = decay(F, t - 1, t) * W(F, u, s, t - 1, first) + last  # exp(ell_t) W(t-1) + u_t
    if not _zero(step - W(F, u, s, t, first)):
        return False, "exp(ell_t) W(t-1) + u_t != W(t)"
    return True, "base W(-1) = 0; step exp(ell_t) W(t-1) + u_t = W(t), t symbolic"


def chunk_split(first=1, *, carry_decay=True) -> tuple[bool, str]:
    """W(t) = Σ_{s=σ..t} decay(s, t) u_s + exp(Σ_{k=σ..t} ell_k) W(σ-1) for symbolic σ <= t.

    ``carry_decay=False`` drops the decay of the state entering the chunk (a control)."""
    import sympy as sp

    t, s, _, sigma, _, u, F = symbols()
    diag = sp.Sum(decay(F, s, t, first) * u(s), (s, sigma, t))  # block 1, as a state
    carried = (decay(F, sigma - 1, t) if carry_decay else 1) * W(F, u, s, sigma - 1, first)  # block 4
    if not _zero(diag + carried - W(F, u, s, t, first)):
        return False, "diagonal block + decayed entering state != W(t)"
    return True, "diagonal block + exp(Σ_{k=σ..t} ell_k) W(σ-1) = W(t), σ and t symbolic"

"""Explicit 64-byte vectors inside numba kernels (imported lazily, by kernels only).

LLVM's loop vectorizer keeps accumulators in memory when they are indexed by a runtime
loop, and on AVX-512 CPUs it prefers 256-bit registers.  A kernel that must keep a tile of
accumulators in registers writes it with these functions instead: each value of type
``Vec`` is one LLVM vector of 64 bytes (16 float32 or 8 float64), an SSA value that lives
in a register.  On CPUs without 512-bit registers LLVM splits every operation into two
256-bit (AVX2), four 128-bit (SSE, NEON) halves, so the code stays portable; only the
speed differs.

Every array argument is a 1-d C-contiguous float32/float64 array (``a.ravel()`` of a
contiguous array is a view) and ``i`` is a flat element index.  A caller guarantees
``0 <= i`` and ``i + lanes(a) <= a.size`` for vector accesses: they are checked only when
numba's bounds checking is on (``NUMBA_BOUNDSCHECK=1``; the test suite runs the SSD
kernel that way once).  Arithmetic carries no fast-math flags, so a NaN or an infinity propagates
exactly as IEEE 754 says (callers rely on that to detect bad inputs from the output).

=====================  =====================================================
``lanes(a)``           elements per vector for ``a.dtype`` (a compile-time constant)
``load(a, i)``         a[i : i + lanes]
``store(a, i, v)``     a[i : i + lanes] = v
``stream(a, i, v)``    the same as a non-temporal store: the cache line is written to
                       memory without being read first; the address must be 64-byte
                       aligned; call ``fence()`` before other threads read it
``splat(a, x)``        a vector of ``x`` in ``a.dtype``
``fma(x, y, z)``       x * y + z, one rounding; ``x`` or ``y`` may be a scalar
``mul(x, y)``          x * y; either may be a scalar
``add(x, y)``          x + y
``hsum(v)``            the sum of the lanes, a scalar
``prefetch(a, i)``     a hint to move the line holding a[i] into L1 (never faults)
``fence()``            orders all earlier stores, non-temporal ones included
=====================  =====================================================
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

__all__ = ["Vec", "lanes", "load", "store", "stream", "splat", "fma", "mul", "add", "hsum", "prefetch", "fence"]

VECTOR_BYTES = 64
_I32 = ir.IntType(32)


class Vec(types.Type):
    """A register of ``VECTOR_BYTES`` holding ``lanes`` elements of ``dtype``."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VECTOR_BYTES // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec[{dtype} x {self.lanes}]")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        elem = ir.FloatType() if fe_type.dtype == types.float32 else ir.DoubleType()
        super().__init__(dmm, fe_type, ir.VectorType(elem, fe_type.lanes))


def _is_flat(a) -> bool:
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype in (types.float32, types.float64)


def _address(context, builder, sig, args, vty, width=0):
    """Pointer to a[i] for (a, i) = args[:2], typed as a pointer to the vector type ``vty``.

    With numba's bounds checking on (``NUMBA_BOUNDSCHECK=1`` or ``boundscheck=True``) an
    access of ``width`` elements is checked to lie inside the array: IndexError if not."""
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    index = context.cast(builder, args[1], sig.args[1], types.intp)
    if width and context.enable_boundscheck:
        cgutils.do_boundscheck(context, builder, index, ary.nitems)
        cgutils.do_boundscheck(context, builder, builder.add(index, ir.Constant(index.type, width - 1)), ary.nitems)
    return builder.bitcast(builder.gep(ary.data, [index]), vty.as_pointer())


def _vector(context, builder, value, fromty, vecty):
    """``value`` as a vector of ``vecty``: vectors pass through, scalars are broadcast."""
    if isinstance(fromty, Vec):
        return value
    lty = context.get_value_type(vecty)
    scalar = context.cast(builder, value, fromty, vecty.dtype)
    one = builder.insert_element(ir.Constant(lty, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(lty, ir.Undefined), ir.Constant(ir.VectorType(_I32, lty.count), [0] * lty.count))


def _common(*tys):
    """The one Vec type among ``tys`` (the others must be scalars), else None."""
    vecs = {t for t in tys if isinstance(t, Vec)}
    if len(vecs) != 1 or not all(isinstance(t, (Vec, types.Number)) for t in tys):
        return None
    return vecs.pop()


@intrinsic
def lanes(typingctx, a):
    if not _is_flat(a):
        return None
    n = Vec(a.dtype).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n)

    return types.intp(a), codegen


@intrinsic
def load(typingctx, a, i):
    if not (_is_flat(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        lty = context.get_value_type(sig.return_type)
        ptr = _address(context, builder, sig, args, lty, lty.count)
        return builder.load(ptr, align=a.dtype.bitwidth // 8)

    return Vec(a.dtype)(a, i), codegen


def _store(a, i, v, non_temporal: bool):
    if not (_is_flat(a) and isinstance(i, types.Integer) and isinstance(v, Vec) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, sig, args):
        lty = context.get_value_type(sig.args[2])
        ptr = _address(context, builder, sig, args, lty, lty.count)
        st = builder.store(args[2], ptr, align=VECTOR_BYTES if non_temporal else a.dtype.bitwidth // 8)
        if non_temporal:
            st.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(_I32, 1)]))
        return context.get_dummy_value()

    return types.none(a, i, v), codegen


@intrinsic
def store(typingctx, a, i, v):
    return _store(a, i, v, non_temporal=False)


@intrinsic
def stream(typingctx, a, i, v):
    return _store(a, i, v, non_temporal=True)


@intrinsic
def splat(typingctx, a, x):
    if not (_is_flat(a) and isinstance(x, types.Number)):
        return None

    def codegen(context, builder, sig, args):
        return _vector(context, builder, args[1], sig.args[1], sig.return_type)

    return Vec(a.dtype)(a, x), codegen


@intrinsic
def fma(typingctx, x, y, z):
    vt = _common(x, y, z)
    if vt is None or z != vt:
        return None

    def codegen(context, builder, sig, args):
        lty = context.get_value_type(vt)
        xs = [_vector(context, builder, v, t, vt) for v, t in zip(args, sig.args)]
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lty, [lty] * 3), f"llvm.fma.v{vt.lanes}f{vt.dtype.bitwidth}")
        return builder.call(fn, xs)

    return vt(x, y, z), codegen


def _binary(x, y, op: str):
    vt = _common(x, y)
    if vt is None:
        return None

    def codegen(context, builder, sig, args):
        u, v = (_vector(context, builder, a, t, vt) for a, t in zip(args, sig.args))
        return getattr(builder, op)(u, v)

    return vt(x, y), codegen


@intrinsic
def mul(typingctx, x, y):
    return _binary(x, y, "fmul")


@intrinsic
def add(typingctx, x, y):
    return _binary(x, y, "fadd")


@intrinsic
def hsum(typingctx, v):
    if not isinstance(v, Vec):
        return None

    def codegen(context, builder, sig, args):
        total = builder.extract_element(args[0], ir.Constant(_I32, 0))
        for k in range(1, v.lanes):
            total = builder.fadd(total, builder.extract_element(args[0], ir.Constant(_I32, k)))
        return total

    return v.dtype(v), codegen


@intrinsic
def prefetch(typingctx, a, i):
    if not (_is_flat(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        i8p = ir.IntType(8).as_pointer()
        ptr = _address(context, builder, sig, args, ir.IntType(8))
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]), "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])  # read, keep in L1, data
        return context.get_dummy_value()

    return types.none(a, i), codegen


@intrinsic
def fence(typingctx):
    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.none(), codegen

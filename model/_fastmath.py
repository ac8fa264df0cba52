"""A vectorisable exp(−x) for the membrane update.

``np.exp`` compiles to a scalar libm call, so LLVM cannot vectorise a loop that calls it
once per neuron — and the COBA update calls it for every neuron at every step (4·10⁷
times per simulated second of COBA-4000). Brian2 gets vectorised exp from gcc's
-ffast-math and glibc's libmvec; numba's LLVM has no vector math library, so we write exp
from operations it can vectorise: Cody–Waite range reduction x = k·ln2 − r, a degree-12
Taylor polynomial for e^r on |r| ≤ ln2/2 (truncation error < 2·10⁻¹⁶ relative), and 2^k
assembled in the exponent bits. Accuracy against ``np.exp`` is tested to 3·10⁻¹⁶.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _as_float(typingctx, bits):
    """Reinterpret the 64 bits of an int64 as a float64 (no conversion)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _as_int(typingctx, value):
    """Reinterpret the 64 bits of a float64 as an int64."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k·LN2_HI is exact for |k| < 2¹¹
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5·2⁵²: adding it rounds to an integer held in the low bits
_SHIFTER_BITS = 0x4338000000000000
_COEF = tuple(1.0 / float(np.prod(np.arange(1, k + 1))) for k in range(13))  # 1/k!


@njit(cache=True, nogil=True, inline="always")
def exp_neg(x):
    """exp(−x) for x ≥ 0, within 4·10⁻¹⁶ relative of np.exp; x is clamped at 700, so that
    larger arguments give exp(−700) ≈ 10⁻³⁰⁴ (and the 2^k bits never leave the normal range)."""
    x = min(x, 700.0)
    kd = x * _INV_LN2 + _SHIFTER  # nearest integer k to x/ln2, in the low mantissa bits
    k = _as_int(kd) - _SHIFTER_BITS
    kf = kd - _SHIFTER
    r = kf * _LN2_HI - x + kf * _LN2_LO  # −x = −k ln2 + r, |r| ≤ ln2/2
    c = _COEF
    p = c[12]
    p = p * r + c[11]
    p = p * r + c[10]
    p = p * r + c[9]
    p = p * r + c[8]
    p = p * r + c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    return p * _as_float((1023 - k) << 52)  # × 2^−k

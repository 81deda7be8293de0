// Shared by the lwnn integer OpenCL programs (prepended by lwnn.backends.opencl_int.device).
// Exact integer arithmetic of lwnn's CPU integer runtime (lwnn.numerics.fixedpoint), one function
// each: s8 = TFLite int8 requantization (Q31 multiplier + shift), q8/q16 = CMSIS-NN legacy
// NN_ROUND shifts and __SSAT. Intermediates that can leave int32 are held in long (64-bit), as the
// CPU holds them in int64; a 32-bit register is modelled by wrap32 (two's complement).
// Signed right shifts are arithmetic (every OpenCL compiler lwnn runs on: LLVM/PoCL, NVIDIA).

#ifndef LWNN_INT_COMMON_H
#define LWNN_INT_COMMON_H

// The s8 Concat rescale is float32 arithmetic: a*b+c must round twice, as NumPy does.
#pragma OPENCL FP_CONTRACT OFF

#define LI32_MIN (-2147483647L - 1L)
#define LI32_MAX 2147483647L

// Low 32 bits of v read as a signed int (a 32-bit register holding v).
inline int wrap32(long v) { return as_int((uint)(as_ulong(v))); }

inline int outside32(long v) { return v < LI32_MIN || v > LI32_MAX; }

// v << n for 0 <= n <= 63 without signed-overflow undefined behaviour (bits wrap as hardware does).
inline long shl64(long v, int n) { return as_long(as_ulong(v) << n); }

// --- s8 (TFLite / gemmlowp) ------------------------------------------------------------------

// SaturatingRoundingDoublingHighMul: floor((a*b + 2^30) / 2^31), capped at INT32_MAX.
inline long srdhm(int a, int b) {
    long ab = (long)a * (long)b + (1L << 30);
    return min(ab >> 31, LI32_MAX);
}

// RoundingDivideByPOT, exponent in [0, 31]: x / 2^e rounded half away from zero.
inline long rdbpot(long x, int e) {
    long mask = (1L << e) - 1L;
    return (((mask + (x >= 0 ? 1L : 0L)) >> 1) + x) >> e;
}

// MultiplyByQuantizedMultiplier of an int32 register: left shift (wrapping in 32 bits) for
// shift > 0, high multiply, rounding right shift for shift < 0.
inline long mbqm(int x, int multiplier, int shift) {
    if (shift > 0) x = as_int(as_uint(x) << shift);
    return rdbpot(srdhm(x, multiplier), shift > 0 ? 0 : -shift);
}

// Exact int64 accumulator -> int8 code: wrap to the 32-bit register, requantize, + zp, clamp.
inline int requantize_s8(long exact, int multiplier, int shift, int zp, int qmin, int qmax) {
    long y = mbqm(wrap32(exact), multiplier, shift) + (long)zp;
    return (int)clamp(y, (long)qmin, (long)qmax);
}

// --- q8/q16 (CMSIS-NN legacy) ----------------------------------------------------------------

// NN_ROUND(s): 1 << (s-1) for s > 0, else 0.
inline long nn_round(int s) { return s > 0 ? (1L << min(s - 1, 62)) : 0L; }

// Codes moved from Q to Q + d: exact left shift (capped at 40 bits, where any non-zero code has
// saturated anyway), or right shift rounding half up (at most 62 bits).
inline long q_move(long x, int d) {
    if (d >= 0) return shl64(x, min(d, 40));
    int r = min(-d, 62);
    return (x + (1L << (r - 1))) >> r;
}

// __SSAT((acc + NN_ROUND(s)) >> s) on a 32-bit register, from the exact accumulator `exact`
// (rounding constant excluded). A negative s is an exact left shift of the register, then SSAT;
// s > 31 gives 0. *overflowed: the value the register should hold left int32.
inline int q_requantize(long exact, int s, int qmin, int qmax, int *overflowed) {
    if (s > 31) {
        *overflowed = outside32(exact);
        return 0;
    }
    long t = exact + nn_round(s);
    *overflowed = outside32(t);
    long r = (long)wrap32(t);
    r = s < 0 ? shl64(r, min(-s, 32)) : (r >> s);
    return (int)clamp(r, (long)qmin, (long)qmax);
}

// --- shapes ----------------------------------------------------------------------------------

#define IDX8I(v, i) ((i) == 0 ? (v).s0 : (i) == 1 ? (v).s1 : (i) == 2 ? (v).s2 : (i) == 3 ? (v).s3 : \
                     (i) == 4 ? (v).s4 : (i) == 5 ? (v).s5 : (i) == 6 ? (v).s6 : (v).s7)

// Element offset, in a tensor with element `strides` (0 on broadcast dims), of the element with
// flat index `flat` in the C-contiguous output `shape`.
inline int bcast_offset(int flat, int rank, int8 shape, int8 strides) {
    int off = 0;
    for (int d = rank - 1; d >= 0; --d) {
        int n = IDX8I(shape, d);
        off += (flat % n) * IDX8I(strides, d);
        flat /= n;
    }
    return off;
}

#endif

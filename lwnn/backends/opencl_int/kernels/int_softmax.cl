// Integer softmax along rows of L codes: row r = (o, i) reads x[(o * L + l) * inner + i], l < L
// (the op's axis, or the flattened trailing dims of an opset < 13 softmax: inner = 1). One row per
// work-item. Build options: -DT_A, -DT_OUT (input and output codes).
#ifndef T_A
#define T_A char
#endif

// --- q8/q16: CMSIS arm_softmax_q7 / arm_softmax_q15 (base-2, on the codes) -------------------
// The Q7/Q15 result is moved to the output Q (SSAT).
__kernel void softmax_q(__global const T_A *x, __global T_OUT *y, int rows, int L, int inner, int bits,
                        int move, int qmin, int qmax) {
    int r = get_global_id(0);
    if (r >= rows) return;
    int start = (r / inner) * L * inner + r % inner;
    long top = x[start];
    for (int l = 1; l < L; ++l) top = max(top, (long)x[start + l * inner]);
    long base = top - (bits == 8 ? 8 : 16), sum = 0;
    for (int l = 0; l < L; ++l) {
        long q = x[start + l * inner];
        if (bits == 8) sum += 1L << clamp(q - base, 0L, 7L);
        else if (q > base) sum += 1L << clamp(q - base, 0L, 31L);
    }
    long out_base = (bits == 8 ? (1L << 20) : (1L << 32)) / sum;
    for (int l = 0; l < L; ++l) {
        long q = x[start + l * inner], v;
        if (bits == 8) v = clamp(out_base >> clamp(13 + base - q, 0L, 31L), -128L, 127L);
        else v = q > base ? clamp(out_base >> clamp(17 + base - q, 0L, 31L), -32768L, 32767L) : 0L;
        y[start + l * inner] = (T_OUT)clamp(q_move(v, move), (long)qmin, (long)qmax);
    }
}

// --- s8: TFLite's int8 reference softmax (lwnn.backends.cpu_int.s8.softmax_rows) --------------

// SaturatingRoundingDoublingHighMul on int64 operands, as lwnn.numerics.fixedpoint computes it.
inline long srdhm64(long a, long b) { return min((a * b + (1L << 30)) >> 31, LI32_MAX); }

// gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0: left shift saturating to int32.
inline long mul_pot_sat(long x, int e) {
    long threshold = (1L << (31 - e)) - 1;
    return x > threshold ? LI32_MAX : x < -threshold ? LI32_MIN : shl64(x, e);
}

// gemmlowp one_over_one_plus_x_for_x_in_0_1 (raw Q0.31 in and out): Newton-Raphson on (1 + a) / 2.
inline long one_over_one_plus_x(long a) {
    long s = a + LI32_MAX;
    long half_denominator = s >= 0 ? (s + 1) >> 1 : -((1 - s) >> 1);  // RoundingHalfSum(a, One)
    long x = 1515870810L + srdhm64(half_denominator, -1010580540L);   // 48/17 - 32/17 * d
    for (int k = 0; k < 3; ++k) {
        long one_minus_half_denominator_times_x = (1L << 29) - srdhm64(half_denominator, x);
        x = (long)wrap32(x + mul_pot_sat(srdhm64(x, one_minus_half_denominator_times_x), 2));
    }
    return mul_pot_sat(x, 1);
}

// exps[d + 255] / terms[d + 255]: exp of diff d = q - max in Q0.31 (-1: below diff_min, output
// -128) and its Q12.19 term of the sum, the CPU's tables. Rows whose sum of terms reaches 2^32
// (the int32 sum wraps) are counted in *overflow.
__kernel void softmax_s8(__global const T_A *x, __global T_OUT *y, __global const int *exps,
                         __global const int *terms, __global int *overflow, int rows, int L, int inner) {
    int r = get_global_id(0);
    if (r >= rows) return;
    int start = (r / inner) * L * inner + r % inner;
    int top = x[start];
    for (int l = 1; l < L; ++l) top = max(top, (int)x[start + l * inner]);
    long total = 0;
    for (int l = 0; l < L; ++l) total += terms[x[start + l * inner] - top + 255];
    if (total >= (1L << 32)) atomic_inc(overflow);
    ulong u = as_ulong(total) & 0xFFFFFFFFUL;
    int headroom_plus_one = clz((uint)u);
    long shifted_sum_minus_one = (long)wrap32((long)((u << headroom_plus_one) & 0xFFFFFFFFUL) - (1L << 31));
    long scale = one_over_one_plus_x(shifted_sum_minus_one);
    int exponent = 12 - headroom_plus_one + 31 - 8;
    for (int l = 0; l < L; ++l) {
        int e = exps[x[start + l * inner] - top + 255];
        long v = -128;
        if (e >= 0) {
            long unsat = exponent > 31 ? 0L : rdbpot(srdhm64(scale, (long)e), exponent);
            v = clamp(unsat - 128L, -128L, 127L);
        }
        y[start + l * inner] = (T_OUT)v;
    }
}

//! How a weight's float values become the bytes the file stores, exactly and the same on
//! every machine: only IEEE-754 single- (and, for int4's error sums, double-) precision
//! operations that are correctly rounded (conversion, addition, multiplication, division,
//! comparison), no fused multiply-add, no SIMD reductions whose order could vary, no libm.
//!
//! - float32: the value's own bits.
//! - float16: IEEE-754 binary16, rounded to nearest, ties to even (overflow → ±infinity).
//! - int8 per channel (what the TensorFlow converter's dynamic-range quantization stores):
//!   for each output channel (a row of the `[out, in]` matrix) `scale = max|w| / 127`
//!   (`1.0` for an all-zero row); `q = clamp(round(w * (1 / scale)), -127, 127)` with
//!   round half away from zero, as TFLite's own quantizer rounds.
//! - int4 (symmetric, zero point 0, the `[-7, 7]` range: -8 is never written, so a weight
//!   and its negation quantize to negated values), one scale per output channel (row) or
//!   per `block` consecutive inputs of a row. The scale is the candidate of least squared
//!   error among `max|w| × t / 7` for `t = (50 − k) / 50`, k = 0..=20 (computed as
//!   `(max|w| × t) / 7` in float32; `t = 1` maps the largest magnitude to exactly ±7,
//!   smaller ones clip it to win precision on the rest: at 16 levels, clipping the largest
//!   weight pays, unlike int8), errors summed in float64 in input order, the largest
//!   candidate on ties. Each candidate is first made what the file stores:
//!   - per channel: a float32 scale; `1.0` for an all-zero row;
//!   - blockwise: rounded to float16 as above (XNNPACK reads blockwise scales as float16),
//!     and raised to float16's smallest normal number `2^-14` when it comes out smaller
//!     (XNNPACK refuses zero and subnormal scales; an all-zero block gets `2^-14`). A
//!     block whose `max|w| / 7` overflows float16 (`max|w| > 7 × 65504`) is refused by
//!     name.
//!
//!   Then `q = clamp(round(w / scale), -7, 7)` with the scale as stored (the float16 one,
//!   widened exactly), round half away from zero: one correctly rounded division, where
//!   int8's `w * (1 / scale)` rounds twice. Two values share a byte: the
//!   element at an even position of a row in the low nibble, the next one in the high
//!   nibble, both two's complement (TFLite's `INT4` packing).

/// How a weight matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Float32,
    Float16,
    /// int8 with one scale per output channel (row).
    Int8PerChannel,
    /// int4 with one scale per output channel (`block: None`) or per `block` consecutive
    /// inputs of a row.
    Int4 {
        block: Option<usize>,
    },
}

impl Storage {
    /// Bytes a `rows × cols` matrix takes (int4 packs two values a byte; rows have an even
    /// number of inputs, see [`Storage::refuse`]).
    pub fn matrix_bytes(self, rows: usize, cols: usize) -> u64 {
        let n = (rows * cols) as u64;
        match self {
            Self::Float32 => 4 * n,
            Self::Float16 => 2 * n,
            Self::Int8PerChannel => n,
            Self::Int4 { .. } => n.div_ceil(2),
        }
    }

    /// How the token embedding table and the logits projection are stored, unless the
    /// recipe says otherwise, beside layer matrices stored as `self`: the same, except that
    /// int4 layers keep an int8 table. The table is read twice (the lookup and, tied, the
    /// logits), so its error reaches the logits directly; measured in docs/llm.md#int4-weights.
    pub fn default_table(self) -> Storage {
        match self {
            Self::Int4 { .. } => Self::Int8PerChannel,
            s => s,
        }
    }

    /// Why a matrix with `cols` inputs (`what`, to name them) cannot be stored this way:
    /// int4 rows must have an even number of inputs (XNNPACK's int4 kernels refuse odd
    /// ones) and a block must divide them.
    pub fn refuse(self, what: &str, cols: usize) -> Option<String> {
        match self {
            Self::Int4 { block: Some(b) } if b == 0 || !cols.is_multiple_of(b) => Some(format!(
                "int4 block size {b} does not divide {what} ({cols})"
            )),
            Self::Int4 { .. } if !cols.is_multiple_of(2) => Some(format!(
                "int4 needs an even number of inputs per row, and {what} is {cols}"
            )),
            _ => None,
        }
    }
}

/// binary16 bits of `x`, rounded to nearest, ties to even.
pub fn f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x007f_ffff;
    if exp == 0xff {
        // Infinity stays infinity; NaN stays a (quiet) NaN.
        return sign | 0x7c00 | if mant != 0 { 0x0200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero): shift the full mantissa (with its implicit 1) right.
        if e < -10 {
            return sign;
        }
        let m = mant | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rest = m & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let round = rest > mid || (rest == mid && half & 1 == 1);
        return sign | (half + u32::from(round)) as u16;
    }
    let half = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    let round = rest > 0x1000 || (rest == 0x1000 && half & 1 == 1);
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    sign | (half + u32::from(round)) as u16
}

/// The float32 value of binary16 bits (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalize.
            let lead = m.leading_zeros() - 22; // zeros above bit 9
            let m = (m << (lead + 1)) & 0x3ff;
            sign | ((127 - 15 - lead) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// The float32 value of bfloat16 bits (exact).
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `max|w|` over `values`, NaNs skipped (as `f32::max` skips them), 0 for none. Computed
/// on the bits: for non-negative floats their order is the order of the values, and an
/// integer maximum vectorizes where a float one (NaN rules) does not.
fn max_abs(values: &[f32]) -> f32 {
    let bits = values.iter().fold(0u32, |m, &w| {
        let b = w.to_bits() & 0x7fff_ffff;
        m.max(if b > 0x7f80_0000 { 0 } else { b })
    });
    f32::from_bits(bits)
}

/// The per-channel scale of a row: `max|w| / 127`, or 1 for a row of zeros.
pub fn int8_scale(row: &[f32]) -> f32 {
    let amax = max_abs(row);
    if amax > 0.0 { amax / 127.0 } else { 1.0 }
}

/// `x.round()` (half away from zero, the sign of zero aside) with integer arithmetic instead
/// of a call into libm: below 2^23 the truncation and the fraction `x - t` are exact.
fn round_half_away(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        // Integral already, infinite or NaN.
        return x;
    }
    let t = x as i32 as f32;
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// 1.5 × 2^23: a float32 sum with it (of an `x` under 2^22 in magnitude) has no fraction
/// bits left, and its low mantissa bits are `x` rounded, offset by this number's.
const ROUNDER: f32 = 12_582_912.0;

/// A row quantized with `scale` (see the module doc for the rule).
pub fn int8_row(row: &[f32], scale: f32, out: &mut Vec<u8>) {
    let inv = 1.0 / scale;
    out.extend(row.iter().map(|&w| {
        // `round_half_away(w * inv).clamp(-127, 127)`, a NaN stored as 0, in exact
        // operations that vectorize: past ±128 everything clamps to ±127 anyway; within
        // it, adding 1.5 × 2^23 rounds to an integer (to nearest, ties to even) that the
        // sum's low bits hold, and a tie rounded toward zero is moved away from it.
        let x = w * inv;
        let x = if x.is_nan() {
            0.0
        } else {
            x.clamp(-128.0, 128.0)
        };
        let m = x + ROUNDER;
        let nearest = m.to_bits() as i32 - ROUNDER.to_bits() as i32;
        let below = x - (m - ROUNDER);
        let q = nearest + i32::from(below == 0.5 && x > 0.0) - i32::from(below == -0.5 && x < 0.0);
        (q.clamp(-127, 127) as i8) as u8
    }));
}

/// float16's smallest normal number, the least blockwise int4 scale XNNPACK accepts.
const F16_MIN_NORMAL: u16 = 0x0400;

/// Scales tried for a row or block: `max|w| × t / 7` for `t = (50 − k) / 50`, k = 0..=20.
const SEARCH: u32 = 20;

/// `w` quantized with `scale`: `clamp(round(w / scale), -7, 7)`.
fn int4_value(w: f32, scale: f32) -> f32 {
    round_half_away(w / scale).clamp(-7.0, 7.0)
}

/// The squared error of `values` stored with `scale`, summed in float64 in order (each
/// product and sum correctly rounded, so the same on every machine).
fn int4_error(values: &[f32], scale: f32) -> f64 {
    values.iter().fold(0.0f64, |sum, &w| {
        let d = f64::from(w) - f64::from(int4_value(w, scale)) * f64::from(scale);
        sum + d * d
    })
}

/// The scale of the search's candidates (`stored` makes each one the value the file holds)
/// whose squared error is least, the largest on ties; `None` if `stored` refuses `max|w| /
/// 7`.
fn int4_search(values: &[f32], stored: impl Fn(f32) -> Option<f32>) -> Option<f32> {
    let amax = max_abs(values);
    let mut best = stored(amax / 7.0)?;
    let mut least = int4_error(values, best);
    for k in 1..=SEARCH {
        let t = (50 - k) as f32 / 50.0;
        let Some(scale) = stored(amax * t / 7.0) else {
            continue;
        };
        let e = int4_error(values, scale);
        if e < least {
            (best, least) = (scale, e);
        }
    }
    Some(best)
}

/// The per-channel int4 scale of a row (see the module doc): 1 for a row of zeros.
pub fn int4_scale(row: &[f32]) -> f32 {
    int4_search(row, |s| Some(if s > 0.0 { s } else { 1.0 })).unwrap_or(1.0)
}

/// The float16 bits of a block's int4 scale (see the module doc); `None` when `max|w| / 7`
/// overflows float16.
pub fn int4_block_scale(block: &[f32]) -> Option<u16> {
    let bits = |s: f32| {
        let b = f16_bits(s);
        (b & 0x7c00 != 0x7c00).then_some(b.max(F16_MIN_NORMAL))
    };
    let best = int4_search(block, |s| bits(s).map(f16_to_f32))?;
    bits(best)
}

/// A row quantized to int4 and packed, `scales` holding one scale per `row.len() /
/// scales.len()` inputs (one for per-channel). The row has an even length.
pub fn int4_row(row: &[f32], scales: &[f32], out: &mut Vec<u8>) {
    let block = row.len() / scales.len().max(1);
    let mut q = row
        .chunks(block)
        .zip(scales)
        .flat_map(|(values, &scale)| values.iter().map(move |&w| int4_value(w, scale) as i8));
    while let (Some(lo), hi) = (q.next(), q.next()) {
        let hi = hi.unwrap_or(0);
        out.push(((lo as u8) & 0x0f) | ((hi as u8) << 4));
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn rounding_without_libm_is_f32_round() {
        let mut x = 0x1234_5678u32;
        let mut values: Vec<f32> = (-2000..=2000).map(|i| i as f32 / 8.0).collect();
        values.extend([
            0.49999997,
            -0.49999997,
            8_388_607.5,
            -8_388_607.5,
            1e30,
            -1e30,
        ]);
        values.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, -0.0]);
        for _ in 0..200_000 {
            // xorshift: arbitrary bit patterns, every binade
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            values.push(f32::from_bits(x));
        }
        for v in values {
            let (ours, libm) = (super::round_half_away(v), v.round());
            assert!(
                ours == libm || (ours.is_nan() && libm.is_nan()),
                "{v:e}: {ours} vs {libm}"
            );
        }
    }

    use super::*;

    #[test]
    fn float16_rounds_to_nearest_even_and_round_trips() {
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(
            f16_bits(65520.0),
            0x7c00,
            "ties above the largest half overflow"
        );
        assert_eq!(f16_bits(1e-8), 0, "below half the smallest subnormal");
        assert_eq!(f16_bits(5.960_464_5e-8), 1, "the smallest subnormal");
        // 1 + 2^-11 is exactly halfway between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(f16_bits(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        for h in 0..=0xffffu16 {
            let x = f16_to_f32(h);
            if x.is_nan() {
                assert!(f16_to_f32(f16_bits(x)).is_nan());
            } else {
                assert_eq!(f16_bits(x), h, "{h:#06x} ({x}) round trips");
            }
        }
    }

    #[test]
    fn bfloat16_is_the_upper_half_of_float32() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
    }

    /// xorshift bit patterns: every binade, NaNs and infinities included.
    fn arbitrary_floats(n: usize) -> Vec<f32> {
        let mut x = 0x9e37_79b9u32;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                f32::from_bits(x)
            })
            .collect()
    }

    #[test]
    fn max_abs_on_bits_is_the_float_maximum() {
        let values = arbitrary_floats(100_000);
        for chunk in values.chunks(7).chain([&[][..], &[f32::NAN, -0.0][..]]) {
            let float = chunk.iter().fold(0.0f32, |m, &w| m.max(w.abs()));
            assert_eq!(max_abs(chunk).to_bits(), float.to_bits(), "{chunk:?}");
        }
    }

    #[test]
    fn int8_rows_quantize_as_rounding_then_clamping() {
        let mut values = arbitrary_floats(100_000);
        values.extend((-300_000..=300_000).map(|i| i as f32 / 1000.0));
        for scale in [1.0f32, 0.013, 7.5e-3, 1e-30, 3e30] {
            let mut out = Vec::new();
            int8_row(&values, scale, &mut out);
            let inv = 1.0 / scale;
            for (&w, &b) in values.iter().zip(&out) {
                let q = round_half_away(w * inv).clamp(-127.0, 127.0);
                let q = if q.is_nan() { 0 } else { q as i8 };
                assert_eq!(b as i8, q, "{w:e} at scale {scale:e}");
            }
        }
    }

    #[test]
    fn int8_rows_round_half_away_from_zero_and_clamp() {
        let row = [0.5f32, -1.27, 1.27, 0.006, -0.004, 0.0];
        let scale = int8_scale(&row);
        assert_eq!(scale, 1.27f32 / 127.0);
        let mut out = Vec::new();
        int8_row(&row, scale, &mut out);
        let q: Vec<i8> = out.iter().map(|&b| b as i8).collect();
        assert_eq!(q, vec![50, -127, 127, 1, 0, 0]);
        assert_eq!(int8_scale(&[0.0, 0.0]), 1.0);
    }

    /// Unpacked signed nibbles of packed int4 bytes (low nibble first).
    fn nibbles(bytes: &[u8]) -> Vec<i8> {
        bytes
            .iter()
            .flat_map(|&b| [((b << 4) as i8) >> 4, (b as i8) >> 4])
            .collect()
    }

    #[test]
    fn int4_packs_low_nibble_first_and_rounds_ties_away_from_zero() {
        // With a scale of 1, w / scale = w: the ties are exact.
        let row = [7.0f32, 2.5, -2.5, 0.5, -0.5, -7.0, 1.49, 0.0];
        let mut out = Vec::new();
        int4_row(&row, &[1.0], &mut out);
        // (7, 3), (-3, 1), (-1, -7), (1, 0): low nibble the first of each pair.
        assert_eq!(out, vec![0x37, 0x1d, 0x9f, 0x01]);
        assert_eq!(nibbles(&out), vec![7, 3, -3, 1, -1, -7, 1, 0]);
    }

    #[test]
    fn int4_scales_are_searched_for_the_least_squared_error() {
        // Exactly representable at max|w| / 7: no candidate does better, the largest wins.
        assert_eq!(int4_scale(&[7.0, -7.0, 7.0, -7.0]), 1.0);
        // max|w| / 7 = 1 leaves every 2.5 half a step off (error 7 × 0.25 = 1.75); 0.9
        // (t = 45/50) clips 7 to 6.3 but puts 2.5 at 2.7 (error 0.49 + 7 × 0.04 = 0.77),
        // the least of the 21 candidates.
        let row = [7.0f32, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5];
        let scale = int4_scale(&row);
        assert_eq!(scale, 0.9);
        let mut out = Vec::new();
        int4_row(&row, &[scale], &mut out);
        assert_eq!(nibbles(&out), vec![7, 3, 3, 3, 3, 3, 3, 3]);
    }

    #[test]
    fn int4_never_writes_minus_eight() {
        // The most negative value maps to -7, not -8: every candidate scale is at least
        // max|w| × 30/50 / 7, so |w| / scale ≤ 11.7 rounds and clamps to 7 at most. With the
        // scale 2 (max|w| / 7 exactly), 7 / 2 = 3.5 and -1 / 2 = -0.5 are exact ties,
        // rounded away from zero.
        let row = [-14.0f32, 12.0, 7.0, -1.0];
        let mut out = Vec::new();
        int4_row(&row, &[2.0], &mut out);
        assert_eq!(nibbles(&out), vec![-7, 6, 4, -1]);
        out.clear();
        let scale = int4_scale(&row);
        assert_eq!(scale, 1.96, "t = 49/50 fits 12 and 7 better");
        int4_row(&row, &[scale], &mut out);
        assert_eq!(nibbles(&out), vec![-7, 6, 4, -1]);
        assert!(!nibbles(&out).contains(&-8));
    }

    #[test]
    fn int4_zero_rows_and_blocks_get_scales_the_runtime_accepts() {
        assert_eq!(int4_scale(&[0.0; 4]), 1.0);
        // An all-zero block, and one whose max|w| / 7 is subnormal in float16, both get
        // the smallest normal float16 (2^-14).
        assert_eq!(int4_block_scale(&[0.0; 32]), Some(0x0400));
        assert_eq!(int4_block_scale(&[1e-5; 32]), Some(0x0400));
        let mut out = Vec::new();
        int4_row(&[0.0; 4], &[f16_to_f32(0x0400)], &mut out);
        assert_eq!(out, vec![0, 0]);
        // Beyond float16: refused.
        assert_eq!(int4_block_scale(&[7.0 * 65536.0]), None);
    }

    #[test]
    fn int4_blockwise_uses_the_float16_scale_of_each_block() {
        // Block 0: max 3.5 → 0.5 (exact in float16, and the least error). Block 1: max 0.7;
        // the least error is at t = 48/50, 0.096 in float16 (0x2e25 = 0.0960083…): 0.7 /
        // that = 7.29 → 7, 0.35 / that = 3.65 → 4, -0.05 / that = -0.52 → -1.
        let row = [3.5f32, -0.25, 1.0, -3.5, 0.7, 0.35, -0.05, 0.0];
        let scales: Vec<u16> = row
            .chunks(4)
            .map(|b| int4_block_scale(b).unwrap_or(0))
            .collect();
        assert_eq!(scales, vec![0x3800, 0x2e25]);
        let wide: Vec<f32> = scales.iter().map(|&h| f16_to_f32(h)).collect();
        let mut out = Vec::new();
        int4_row(&row, &wide, &mut out);
        // -0.25 / 0.5 = -0.5 → -1 (a tie, away from zero).
        assert_eq!(nibbles(&out), vec![7, -1, 2, -7, 7, 4, -1, 0]);
        assert_eq!(out, vec![0xf7, 0x92, 0x47, 0x0f]);
    }
}

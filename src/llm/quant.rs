//! How a weight's float values become the bytes the file stores, exactly and the same on
//! every machine: only IEEE-754 single-precision operations that are correctly rounded
//! (conversion, multiplication, division, comparison), no fused multiply-add, no SIMD
//! reductions whose order could vary, no libm.
//!
//! - float32: the value's own bits.
//! - float16: IEEE-754 binary16, rounded to nearest, ties to even (overflow → ±infinity).
//! - int8 per channel (what the TensorFlow converter's dynamic-range quantization stores):
//!   for each output channel (a row of the `[out, in]` matrix) `scale = max|w| / 127`
//!   (`1.0` for an all-zero row); `q = clamp(round(w * (1 / scale)), -127, 127)` with
//!   round half away from zero, as TFLite's own quantizer rounds.
//!
//! A block size for int4 (scales per `block` inputs within a row) extends [`Storage`].

/// How a weight matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Float32,
    Float16,
    /// int8 with one scale per output channel (row).
    Int8PerChannel,
}

impl Storage {
    /// Bytes per stored element.
    pub fn element_bytes(self) -> u64 {
        match self {
            Self::Float32 => 4,
            Self::Float16 => 2,
            Self::Int8PerChannel => 1,
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

/// The per-channel scale of a row: `max|w| / 127`, or 1 for a row of zeros.
pub fn int8_scale(row: &[f32]) -> f32 {
    let amax = row.iter().fold(0.0f32, |m, &w| m.max(w.abs()));
    if amax > 0.0 { amax / 127.0 } else { 1.0 }
}

/// A row quantized with `scale` (see the module doc for the rule).
pub fn int8_row(row: &[f32], scale: f32, out: &mut Vec<u8>) {
    let inv = 1.0 / scale;
    out.extend(row.iter().map(|&w| {
        let q = (w * inv).round().clamp(-127.0, 127.0);
        (q as i8) as u8
    }));
}

#[cfg(test)]
mod tests {
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
}

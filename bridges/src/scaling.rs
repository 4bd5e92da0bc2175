//! Raw bus numbers to engineering values: `raw × scale + offset`.
//!
//! Scales are usually decimal fractions (0.1, 0.01) that have no exact
//! binary form, so `2282 × 0.1` gives 228.20000000000002 where the device
//! meant 228.2. Dividing by the reciprocal when it is a whole number
//! (2282 / 10) gives the nearest float to the intended value instead.

/// `raw` scaled and offset; the identity when both are `None`.
pub(crate) fn apply(raw: f64, scale: Option<f64>, offset: Option<f64>) -> f64 {
    let scaled = match scale {
        Some(s) if s != 0.0 && s.abs() < 1.0 => {
            let divisor = 1.0 / s;
            let whole = divisor.round();
            if (divisor - whole).abs() <= 1e-9 * whole.abs() {
                raw / whole
            } else {
                raw * s
            }
        }
        Some(s) => raw * s,
        None => raw,
    };
    scaled + offset.unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_scales_give_the_intended_value() {
        assert_eq!(apply(2282.0, Some(0.1), None), 228.2);
        assert_eq!(apply(2296.0, Some(0.1), None), 229.6);
        assert_eq!(apply(12345.0, Some(0.01), None), 123.45);
        assert_eq!(apply(-5.0, Some(-0.5), None), 2.5);
        assert_eq!(apply(650.0, Some(0.1), Some(-40.0)), 25.0);
        // Not a reciprocal of a whole number: multiplied as written.
        assert_eq!(apply(4.0, Some(0.3), None), 4.0 * 0.3);
        assert_eq!(apply(3.0, Some(2.0), Some(1.0)), 7.0);
        assert_eq!(apply(3.0, None, None), 3.0);
    }
}

//! Kubernetes resource quantities (`500m`, `128Mi`, `1.5`, `2e3`): parsing with Kubernetes'
//! grammar, exact comparison, rounding, and the canonical text the API server writes back
//! (`0.5` is stored as `500m`, `1536Mi` stays `1536Mi`, `1000` becomes `1k`).
//!
//! A value is held exactly as `value × 10^scale` with an `i128` mantissa. Kubernetes keeps at
//! most nanosecond-like precision (`10^-9`) and rounds smaller fractions away from zero, as
//! here. Values beyond `i128` (far above any real resource) are rejected rather than clamped.

use std::cmp::Ordering;
use std::fmt;

/// How a quantity was written, which decides how it is printed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantityFormat {
    /// `Ki`, `Mi`, ... (powers of 1024).
    BinarySI,
    /// No suffix or `n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`.
    DecimalSI,
    /// `e3`, `E-2`.
    DecimalExponent,
}

/// An exact quantity.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    value: i128,
    scale: i32,
    format: QuantityFormat,
}

/// Why a string is not a quantity; the text is Kubernetes' own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantityError(pub &'static str);

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The message Kubernetes gives for a string that is not a quantity.
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const BAD_SUFFIX: &str = "unable to parse quantity's suffix";
const NUMERIC: &str = "unable to parse quantity's numeric value";

/// The smallest scale kept (nano).
const MIN_SCALE: i32 = -9;

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Quantity {
    /// Parses Kubernetes' quantity syntax.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(QuantityError(FORMAT_WRONG));
        }
        let mut i = 0;
        let mut negative = false;
        if b[0] == b'+' || b[0] == b'-' {
            negative = b[0] == b'-';
            i = 1;
        }
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &s[int_start..i];
        let mut frac_part = "";
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let f = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &s[f..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(QuantityError(FORMAT_WRONG));
        }
        let suffix = &s[i..];
        let (base2, exponent, format) = parse_suffix(suffix)?;

        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let mut value: i128 = if digits.is_empty() {
            0
        } else {
            if digits.len() > 36 {
                return Err(QuantityError(NUMERIC));
            }
            digits.parse::<i128>().map_err(|_| QuantityError(NUMERIC))?
        };
        let mut scale = -(frac_part.len() as i32);
        if base2 {
            value = value
                .checked_mul(1i128 << exponent)
                .ok_or(QuantityError(NUMERIC))?;
        } else {
            scale += exponent;
        }
        if negative {
            value = -value;
        }
        let mut q = Quantity {
            value,
            scale,
            format,
        };
        q.normalize();
        if q.scale < MIN_SCALE {
            q = q.rounded_up(MIN_SCALE);
        }
        if q.format == QuantityFormat::BinarySI && q.value != 0 && q.abs_lt_one() {
            q.format = QuantityFormat::DecimalSI;
        }
        Ok(q)
    }

    /// Removes trailing zeros of the mantissa into the scale.
    fn normalize(&mut self) {
        if self.value == 0 {
            self.scale = 0;
            return;
        }
        while self.value % 10 == 0 {
            self.value /= 10;
            self.scale += 1;
        }
    }

    fn abs_lt_one(&self) -> bool {
        self.cmp_value(&Quantity::from_int(1)) == Ordering::Less
            && self.cmp_value(&Quantity::from_int(-1)) == Ordering::Greater
    }

    /// An integer quantity (DecimalSI).
    pub fn from_int(v: i64) -> Quantity {
        let mut q = Quantity {
            value: v as i128,
            scale: 0,
            format: QuantityFormat::DecimalSI,
        };
        q.normalize();
        q
    }

    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.value == 0
    }

    pub fn is_negative(&self) -> bool {
        self.value < 0
    }

    /// The quantity rounded away from zero to `scale` (10^scale units), as Kubernetes'
    /// `RoundUp` does.
    pub fn rounded_up(&self, scale: i32) -> Quantity {
        if self.scale >= scale {
            return *self;
        }
        let shift = (scale - self.scale) as u32;
        let mut out = match pow10(shift) {
            Some(d) => {
                let mut v = self.value / d;
                if self.value % d != 0 {
                    v += self.value.signum();
                }
                Quantity {
                    value: v,
                    scale,
                    format: self.format,
                }
            }
            // Smaller than one unit of `scale`: one unit, away from zero.
            None => Quantity {
                value: self.value.signum(),
                scale,
                format: self.format,
            },
        };
        out.normalize();
        out
    }

    /// Whether the value is a whole number.
    pub fn is_integer(&self) -> bool {
        self.scale >= 0 || self.value == 0
    }

    /// The value in thousandths, rounded up (Kubernetes' `MilliValue`), saturating.
    pub fn milli_value(&self) -> i64 {
        let r = self.rounded_up(-3);
        let shift = r.scale + 3;
        let v = if shift >= 0 {
            pow10(shift as u32).and_then(|p| r.value.checked_mul(p))
        } else {
            Some(r.value)
        };
        match v {
            Some(v) => v.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            None if r.value < 0 => i64::MIN,
            None => i64::MAX,
        }
    }

    /// The value rounded up to a whole number (Kubernetes' `Value`), saturating.
    pub fn int_value(&self) -> i64 {
        let r = self.rounded_up(0);
        let v = pow10(r.scale.max(0) as u32).and_then(|p| r.value.checked_mul(p));
        match v {
            Some(v) => v.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            None if r.value < 0 => i64::MIN,
            None => i64::MAX,
        }
    }

    /// The sum of two quantities (keeping this one's format), `None` on overflow.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let scale = self.scale.min(other.scale);
        let a = self
            .value
            .checked_mul(pow10((self.scale - scale) as u32)?)?;
        let b = other
            .value
            .checked_mul(pow10((other.scale - scale) as u32)?)?;
        let mut out = Quantity {
            value: a.checked_add(b)?,
            scale,
            format: self.format,
        };
        out.normalize();
        Some(out)
    }

    /// Parses a quantity given as JSON: a string, or a number (Kubernetes accepts both).
    pub fn from_json(v: &serde_json::Value) -> Result<Quantity, QuantityError> {
        match v {
            serde_json::Value::String(s) => Quantity::parse(s),
            serde_json::Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => Err(QuantityError(FORMAT_WRONG)),
        }
    }

    /// Numeric comparison (format is ignored).
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        let (a, b) = (self, other);
        match (a.value.signum(), b.value.signum()) {
            (x, y) if x != y => return x.cmp(&y),
            (0, 0) => return Ordering::Equal,
            _ => {}
        }
        // Same sign, both non-zero: align to the smaller scale.
        let (hi, lo, swapped) = if a.scale >= b.scale {
            (a, b, false)
        } else {
            (b, a, true)
        };
        let shift = (hi.scale - lo.scale) as u32;
        let ord = match pow10(shift).and_then(|p| hi.value.checked_mul(p)) {
            Some(scaled) => scaled.cmp(&lo.value),
            // The scaled value overflows: its magnitude is larger.
            None => {
                if hi.value > 0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
        };
        if swapped { ord.reverse() } else { ord }
    }

    /// The canonical text Kubernetes serializes the quantity as.
    pub fn canonical(&self) -> String {
        if self.value == 0 {
            return "0".into();
        }
        let mut format = self.format;
        if format == QuantityFormat::BinarySI {
            let small = self.cmp_value(&Quantity::from_int(-1024)) == Ordering::Greater
                && self.cmp_value(&Quantity::from_int(1024)) == Ordering::Less;
            if small || !self.is_integer() {
                format = QuantityFormat::DecimalSI;
            }
        }
        match format {
            QuantityFormat::BinarySI => {
                // An integer: value × 10^scale, scale ≥ 0.
                let Some(mut v) = pow10(self.scale as u32).and_then(|p| self.value.checked_mul(p))
                else {
                    return self.decimal(QuantityFormat::DecimalExponent);
                };
                let mut exp = 0;
                while exp < 6 && v % 1024 == 0 {
                    v /= 1024;
                    exp += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
                format!("{v}{suffix}")
            }
            f => self.decimal(f),
        }
    }

    fn decimal(&self, format: QuantityFormat) -> String {
        let mut m = self.value;
        let mut e = self.scale;
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        let r = e.rem_euclid(3);
        if r != 0 {
            match m.checked_mul(10i128.pow(r as u32)) {
                Some(v) => {
                    m = v;
                    e -= r;
                }
                None => return format!("{m}e{e}"),
            }
        }
        let suffix = match (format, e) {
            (QuantityFormat::DecimalExponent, 0) => String::new(),
            (QuantityFormat::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 0) => String::new(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{m}{suffix}")
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_value(other) == Ordering::Equal
    }
}

/// (base 2?, exponent, format) of a suffix.
fn parse_suffix(suffix: &str) -> Result<(bool, i32, QuantityFormat), QuantityError> {
    use QuantityFormat::*;
    Ok(match suffix {
        "" => (false, 0, DecimalSI),
        "n" => (false, -9, DecimalSI),
        "u" => (false, -6, DecimalSI),
        "m" => (false, -3, DecimalSI),
        "k" => (false, 3, DecimalSI),
        "M" => (false, 6, DecimalSI),
        "G" => (false, 9, DecimalSI),
        "T" => (false, 12, DecimalSI),
        "P" => (false, 15, DecimalSI),
        "E" => (false, 18, DecimalSI),
        "Ki" => (true, 10, BinarySI),
        "Mi" => (true, 20, BinarySI),
        "Gi" => (true, 30, BinarySI),
        "Ti" => (true, 40, BinarySI),
        "Pi" => (true, 50, BinarySI),
        "Ei" => (true, 60, BinarySI),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let rest = &s[1..];
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(QuantityError(if valid_charset(s) {
                    BAD_SUFFIX
                } else {
                    FORMAT_WRONG
                }));
            }
            let e: i32 = rest.parse().map_err(|_| QuantityError(BAD_SUFFIX))?;
            if !(-1000..=1000).contains(&e) {
                return Err(QuantityError(NUMERIC));
            }
            (false, e, DecimalExponent)
        }
        s => {
            return Err(QuantityError(if valid_charset(s) {
                BAD_SUFFIX
            } else {
                FORMAT_WRONG
            }));
        }
    })
}

/// Whether a suffix has only the characters Kubernetes' quantity expression allows.
fn valid_charset(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b"eEinumkKMGTP".contains(&b[i]) {
        i += 1;
    }
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    b[i..].iter().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        Quantity::parse(s).unwrap().canonical()
    }

    #[test]
    fn canonical_forms_match_kubernetes() {
        for (input, want) in [
            ("0", "0"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("1000", "1k"),
            ("1.5", "1500m"),
            ("128Mi", "128Mi"),
            ("1.5Gi", "1536Mi"),
            ("1024", "1024"),
            ("1Ki", "1Ki"),
            ("0.5Ki", "512"),
            ("0.1Ki", "102400m"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("129e6", "129e6"),
            ("128974848", "128974848"),
            ("0.0001", "100u"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("-2", "-2"),
            ("+3k", "3k"),
            ("10Gi", "10Gi"),
            ("2000Mi", "2000Mi"),
            ("1E", "1E"),
            ("5.", "5"),
            (".5", "500m"),
        ] {
            assert_eq!(c(input), want, "{input}");
        }
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in ["", ".", "abc", "1.2.3", "1Qi", "1 Gi", "--1", "1e", "Mi"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Quantity::parse("1Qi").unwrap_err().0, FORMAT_WRONG);
        assert_eq!(Quantity::parse("1kk").unwrap_err().0, BAD_SUFFIX);
    }

    #[test]
    fn compares_across_suffixes() {
        let q = |s| Quantity::parse(s).unwrap();
        assert!(q("100m").cmp_value(&q("0.1")) == Ordering::Equal);
        assert!(q("1Gi").cmp_value(&q("1G")) == Ordering::Greater);
        assert!(q("128Mi").cmp_value(&q("256Mi")) == Ordering::Less);
        assert!(q("1E").cmp_value(&q("1n")) == Ordering::Greater);
        assert!(q("-1").cmp_value(&q("1n")) == Ordering::Less);
        assert_eq!(q("1500m").milli_value(), 1500);
        assert_eq!(q("0.0001").rounded_up(-3).canonical(), "1m");
        assert_eq!(q("-0.0001").rounded_up(-3).canonical(), "-1m");
        assert_eq!(q("2.5").int_value(), 3);
        assert!(q("2").is_integer() && !q("2.5").is_integer());
        assert_eq!(q("1").checked_add(&q("500m")).unwrap().canonical(), "1500m");
        assert_eq!(q("1Gi").checked_add(&q("1Gi")).unwrap().canonical(), "2Gi");
        assert_eq!(
            Quantity::from_json(&serde_json::json!(0.5))
                .unwrap()
                .canonical(),
            "500m"
        );
        assert!(Quantity::from_json(&serde_json::json!(true)).is_err());
    }
}

//! Kubernetes resource quantities (`100m`, `128Mi`, `1.5`, `2e3`) as exact integers: milli
//! units for CPU, plain units for bytes.

/// Parses a quantity into thousandths of its unit, rounding up (as Kubernetes does for CPU).
pub fn parse_milli(q: &str) -> Result<i128, String> {
    let q = q.trim();
    if q.is_empty() {
        return Err("empty quantity".into());
    }
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let suffix_len = if binary.iter().any(|b| q.ends_with(b)) {
        2
    } else if q.ends_with(['n', 'u', 'm', 'k', 'M', 'G', 'T', 'P', 'E']) {
        1
    } else {
        0
    };
    let (num, suffix) = q.split_at(q.len() - suffix_len);
    // Exponent form (`1e3`) has no suffix.
    let (num, exp10) = match num.find(['e', 'E']) {
        Some(i) if suffix.is_empty() => (
            &num[..i],
            num[i + 1..]
                .parse::<i32>()
                .map_err(|_| format!("invalid quantity {q:?}"))?,
        ),
        _ => (num, 0),
    };
    let (mul_num, mul_den): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1000),
        "k" => (1000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        _ => return Err(format!("invalid quantity suffix in {q:?}")),
    };
    let neg = num.starts_with('-');
    let num = num.trim_start_matches(['+', '-']);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("invalid quantity {q:?}"));
    }
    // value = digits / 10^frac_len * 10^exp10 * mul; we want value * 1000, rounded up.
    let digits: i128 = format!("{int}{frac}")
        .parse::<i128>()
        .map_err(|_| format!("quantity {q:?} is too large"))?;
    let mut numer = digits * mul_num * 1000;
    let mut denom = mul_den * 10i128.pow(frac.len() as u32);
    if exp10 >= 0 {
        numer *= 10i128.pow(exp10 as u32);
    } else {
        denom *= 10i128.pow((-exp10) as u32);
    }
    let v = (numer + denom - 1) / denom;
    Ok(if neg { -v } else { v })
}

/// A quantity in whole units, rounded up (bytes, counts).
pub fn parse_value(q: &str) -> Result<i128, String> {
    let m = parse_milli(q)?;
    Ok((m + 999).div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_quantities() {
        assert_eq!(parse_milli("100m").unwrap(), 100);
        assert_eq!(parse_milli("1").unwrap(), 1000);
        assert_eq!(parse_milli("1.5").unwrap(), 1500);
        assert_eq!(parse_milli("250000u").unwrap(), 250);
        assert_eq!(parse_value("128Mi").unwrap(), 128 << 20);
        assert_eq!(parse_value("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_value("1e3").unwrap(), 1000);
        assert_eq!(parse_value("1.5Ki").unwrap(), 1536);
        assert_eq!(parse_value("0.1").unwrap(), 1);
        assert!(parse_milli("12x").is_err());
        assert!(parse_milli("").is_err());
        assert!(parse_milli("abc").is_err());
        assert_eq!(parse_value("1E").unwrap(), 1_000_000_000_000_000_000);
        assert_eq!(parse_value("2E3").unwrap(), 2000);
    }
}

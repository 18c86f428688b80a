//! Fixed-size text building for the shim: paths with suffixes, numbers, RFC 3339 timestamps.

/// A NUL-terminated byte string of at most `N - 1` bytes, on the stack.
pub struct Buf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Buf<N> {
    pub const fn new() -> Self {
        Buf {
            bytes: [0; N],
            len: 0,
        }
    }

    pub fn push(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            if self.len + 1 < N {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
        self.bytes[self.len] = 0;
        self
    }

    pub fn push_u64(&mut self, mut v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    pub fn push_i64(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.push(b"-");
        }
        self.push_u64(v.unsigned_abs())
    }

    /// Pushes `v` zero-padded to `width` digits.
    pub fn push_padded(&mut self, v: u64, width: usize) -> &mut Self {
        let mut tmp = Buf::<24>::new();
        tmp.push_u64(v);
        for _ in tmp.len..width {
            self.push(b"0");
        }
        self.push(tmp.as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The bytes including the terminating NUL, for system calls.
    pub fn c_str(&self) -> &[u8] {
        &self.bytes[..self.len + 1]
    }
}

/// Parses a decimal number (optionally negative); `None` if `s` is not one.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

/// Appends `sec.nsec` (Unix time, UTC) as RFC 3339 with nanoseconds: `2006-01-02T15:04:05.999999999Z`.
pub fn push_rfc3339<const N: usize>(out: &mut Buf<N>, sec: i64, nsec: i64) {
    let days = sec.div_euclid(86_400);
    let rem = sec.rem_euclid(86_400) as u64;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as u64;
    out.push_padded(year, 4)
        .push(b"-")
        .push_padded(month, 2)
        .push(b"-")
        .push_padded(day, 2);
    out.push(b"T")
        .push_padded(rem / 3600, 2)
        .push(b":")
        .push_padded(rem / 60 % 60, 2);
    out.push(b":")
        .push_padded(rem % 60, 2)
        .push(b".")
        .push_padded(nsec as u64, 9)
        .push(b"Z");
}

/// Finds `key` at the start of a line in `text` and parses the number after it.
pub fn find_counter(text: &[u8], key: &[u8]) -> Option<i64> {
    let mut start = 0;
    while start < text.len() {
        let end = text[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |p| start + p);
        let line = &text[start..end];
        if line.len() > key.len() && line.starts_with(key) && line[key.len()] == b' ' {
            return parse_i64(&line[key.len() + 1..]);
        }
        start = end + 1;
    }
    None
}

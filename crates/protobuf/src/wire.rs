//! Protobuf wire format reading: varints, field keys, length-delimited values, skipping.
//! Every length is checked against the bytes left before it is used, so no input can make
//! the reader allocate or index out of bounds.

use crate::error::Problem;

pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
pub(crate) const FIXED32: u8 = 5;

/// Nesting limit for skipped groups (unknown fields only).
const MAX_GROUP_DEPTH: usize = 64;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a varint of up to 10 bytes, as Go's generated code does (bits past 64 dropped).
    pub(crate) fn varint(&mut self) -> Result<u64, Problem> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(Problem::TruncatedVarint);
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Problem::VarintOverflow)
    }

    /// Reads a field key: (field number, wire type).
    pub(crate) fn key(&mut self) -> Result<(u32, u8), Problem> {
        let key = self.varint()?;
        let number = key >> 3;
        let wire_type = (key & 7) as u8;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(Problem::IllegalFieldNumber { number });
        }
        if matches!(wire_type, END_GROUP | 6 | 7) {
            return Err(Problem::InvalidWireType { wire_type });
        }
        Ok((number as u32, wire_type))
    }

    /// Reads a length-delimited value.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Problem> {
        let len = self.varint()?;
        self.take(len)
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, Problem> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], Problem> {
        let available = self.buf.len() - self.pos;
        if len > available as u64 {
            return Err(Problem::Truncated {
                needed: len,
                available,
            });
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// Skips the value of a field with `wire_type` (an unknown field).
    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<(), Problem> {
        self.skip_nested(wire_type, 0)
    }

    fn skip_nested(&mut self, wire_type: u8, depth: usize) -> Result<(), Problem> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(Problem::InvalidWireType { wire_type });
                }
                loop {
                    let key = self.varint()?;
                    let inner = (key & 7) as u8;
                    if key >> 3 == 0 {
                        return Err(Problem::IllegalFieldNumber { number: 0 });
                    }
                    if inner == END_GROUP {
                        return Ok(());
                    }
                    if matches!(inner, 6 | 7) {
                        return Err(Problem::InvalidWireType { wire_type: inner });
                    }
                    self.skip_nested(inner, depth + 1)?;
                }
            }
            other => Err(Problem::InvalidWireType { wire_type: other }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_and_fail_cleanly() {
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        assert_eq!(Reader::new(&[0x96]).varint(), Err(Problem::TruncatedVarint));
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(Problem::VarintOverflow)
        );
        // -1 as int32 is sign-extended to ten bytes.
        let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&minus_one).varint().map(|v| v as i32), Ok(-1));
    }

    #[test]
    fn lengths_are_checked_before_use() {
        assert_eq!(
            Reader::new(&[0x05, 1, 2]).bytes(),
            Err(Problem::Truncated {
                needed: 5,
                available: 2
            })
        );
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            Reader::new(&huge).bytes(),
            Err(Problem::Truncated { .. })
        ));
    }

    #[test]
    fn keys_reject_field_zero_and_bad_wire_types() {
        assert_eq!(
            Reader::new(&[0x00]).key(),
            Err(Problem::IllegalFieldNumber { number: 0 })
        );
        assert_eq!(
            Reader::new(&[0x0c]).key(),
            Err(Problem::InvalidWireType { wire_type: 4 })
        );
        assert_eq!(
            Reader::new(&[0x0f]).key(),
            Err(Problem::InvalidWireType { wire_type: 7 })
        );
        assert_eq!(Reader::new(&[0x0a]).key(), Ok((1, LEN)));
    }

    #[test]
    fn groups_are_skipped_with_their_contents() {
        // group 1 { field 2 varint 5 } then field 3 varint 7
        let mut r = Reader::new(&[0x0b, 0x10, 0x05, 0x0c, 0x18, 0x07]);
        let (n, w) = r.key().unwrap();
        assert_eq!((n, w), (1, START_GROUP));
        r.skip(w).unwrap();
        assert_eq!(r.key(), Ok((3, VARINT)));
        assert_eq!(r.varint(), Ok(7));
        assert!(r.at_end());
        assert!(Reader::new(&[0x10, 0x05]).skip(START_GROUP).is_err());
    }
}

//! The chunked transfer coding (RFC 9112 §7.1), followed byte by byte so the relay knows
//! where a chunked body ends while its bytes pass through unchanged, or hands on only the
//! chunk data (to an HTTP/1.0 client, which cannot read chunks). Line endings must be CRLF and
//! sizes, extensions and trailers are bounded, so a malformed body ends the exchange instead of
//! desynchronising the two connections.

/// A chunk-size line (digits and extensions) longer than this is refused.
const MAX_LINE: usize = 4096;
/// The trailer section is refused beyond this.
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// After the size: extensions up to CR.
    Ext,
    /// The LF ending a size line.
    SizeLf,
    /// Chunk data (`left` bytes to go).
    Data,
    DataCr,
    DataLf,
    /// The start of a trailer line, or the CR of the final empty line.
    TrailerStart,
    Trailer,
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    Done,
}

/// What is wrong with a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

/// Where a chunked body stands.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    left: u64,
    digits: u8,
    line: usize,
    trailers: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size,
            left: 0,
            digits: 0,
            line: 0,
            trailers: 0,
        }
    }
}

impl Chunked {
    /// Whether the body's last byte has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Follows `input`; returns how many of its bytes belong to the body (all of them unless
    /// the body ends inside it). `data` receives the chunk data, in order.
    pub fn feed(
        &mut self,
        input: &[u8],
        data: &mut impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let take = (input.len() - i).min(usize::try_from(self.left).unwrap_or(usize::MAX));
                data(&input[i..i + take]);
                i += take;
                self.left -= take as u64;
                if self.left == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits == 15 {
                            return Err(ChunkError("chunk size too large"));
                        }
                        self.digits += 1;
                        self.line += 1;
                        self.left =
                            self.left * 16 + u64::from((b as char).to_digit(16).unwrap_or(0));
                        State::Size
                    }
                    _ if self.digits == 0 => return Err(ChunkError("chunk size expected")),
                    b';' | b' ' | b'\t' => State::Ext,
                    b'\r' => State::SizeLf,
                    _ => return Err(ChunkError("invalid chunk size")),
                },
                State::Ext => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(ChunkError("bare LF in a chunk extension")),
                    _ => {
                        self.line += 1;
                        if self.line > MAX_LINE {
                            return Err(ChunkError("chunk extension too long"));
                        }
                        State::Ext
                    }
                },
                State::SizeLf => match b {
                    b'\n' => {
                        self.digits = 0;
                        self.line = 0;
                        if self.left == 0 {
                            State::TrailerStart
                        } else {
                            State::Data
                        }
                    }
                    _ => return Err(ChunkError("CR without LF after a chunk size")),
                },
                State::Data => unreachable!("handled above"),
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(ChunkError("chunk data longer than its size")),
                },
                State::DataLf => match b {
                    b'\n' => State::Size,
                    _ => return Err(ChunkError("CR without LF after chunk data")),
                },
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    _ => self.trailer_byte()?,
                },
                State::Trailer => match b {
                    b'\r' => State::TrailerLf,
                    _ => self.trailer_byte()?,
                },
                State::TrailerLf => match b {
                    b'\n' => State::TrailerStart,
                    _ => return Err(ChunkError("CR without LF in the trailers")),
                },
                State::EndLf => match b {
                    b'\n' => {
                        self.state = State::Done;
                        return Ok(i);
                    }
                    _ => return Err(ChunkError("CR without LF at the end")),
                },
                State::Done => return Ok(i - 1),
            };
        }
        Ok(i)
    }

    fn trailer_byte(&mut self) -> Result<State, ChunkError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(ChunkError("trailers too large"));
        }
        Ok(State::Trailer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes: (bytes of the body, its data, done).
    fn run(input: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool), ChunkError> {
        let mut c = Chunked::default();
        let mut data = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let n = c.feed(piece, &mut |d| data.extend_from_slice(d))?;
            used += n;
            if c.is_done() {
                break;
            }
            assert_eq!(n, piece.len(), "an unfinished body takes every byte");
        }
        Ok((used, data, c.is_done()))
    }

    #[test]
    fn finds_the_end_and_the_data_in_any_split() {
        let body = b"5\r\nhello\r\n1A;name=v\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\nGET / HTTP/1.1\r\n";
        let end = body.len() - b"GET / HTTP/1.1\r\n".len();
        for step in [1, 2, 3, 7, 64, body.len()] {
            let (used, data, done) = run(body, step).unwrap();
            assert!(done, "step {step}");
            assert_eq!(used, end, "step {step}");
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz");
        }
    }

    #[test]
    fn an_empty_body_and_an_unfinished_one() {
        assert_eq!(run(b"0\r\n\r\n", 1).unwrap(), (5, vec![], true));
        let (used, data, done) = run(b"3\r\nab", 4).unwrap();
        assert_eq!((used, data.as_slice(), done), (5, &b"ab"[..], false));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"5\nhello\r\n",
            b"3\r\nabcd\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"0\r\n\r\r",
            b"1234567890abcdef0\r\n",
        ] {
            assert!(run(bad, 1).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_ext = [b"1;".as_slice(), &[b'x'; MAX_LINE + 1], b"\r\n"].concat();
        assert!(run(&long_ext, 100).is_err());
    }
}

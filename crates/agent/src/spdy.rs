//! A SPDY/3.1 server session, enough for Kubernetes' streaming protocols (port-forward, and
//! exec/attach when a client falls back from WebSockets): the peer opens streams with
//! SYN_STREAM (headers compressed with zlib and SPDY's preset dictionary), the session
//! replies, and data flows both ways until FIN or RST_STREAM; PINGs are echoed. Flow control
//! is not enforced, matching the Go implementation Kubernetes clients use (moby/spdystream).
//!
//! The session runs over byte chunks (`incoming`) and writes whole frames (`outgoing`), so the
//! same code serves a raw upgraded connection and SPDY tunnelled in WebSocket messages.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::sync::mpsc;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;
/// Status code of RST_STREAM: CANCEL.
pub const RST_CANCEL: u32 = 5;
const MAX_DATA: usize = 32 * 1024;
/// Frames larger than this are a protocol error (SPDY allows 16 MiB; nobody sends that).
const MAX_FRAME: usize = 1 << 20;

/// The SPDY/3 header compression dictionary: length-prefixed header names and values,
/// then common status codes, dates and content types (draft-mbelshe-httpbis-spdy-00 §2.6.10.1).
fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
}

/// A protocol violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpdyError(pub String);

impl std::fmt::Display for SpdyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SPDY: {}", self.0)
    }
}

fn err(m: impl Into<String>) -> SpdyError {
    SpdyError(m.into())
}

/// Header compression state of one direction of a session.
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
    dict: Vec<u8>,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        let dict = dictionary();
        let mut deflate = Compress::new(Compression::default(), true);
        let _ = deflate.set_dictionary(&dict);
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate,
            dict,
        }
    }
}

impl HeaderCodec {
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 256);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(4096);
            }
            let before = self.inflate.total_in();
            let r = self
                .inflate
                .decompress_vec(&block[pos..], &mut out, FlushDecompress::Sync);
            pos += (self.inflate.total_in() - before) as usize;
            match r {
                Ok(_) => {
                    if pos >= block.len() && out.capacity() > out.len() {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dict)
                        .map_err(|e| err(format!("header dictionary: {e}")))?;
                }
                Err(e) => return Err(err(format!("header block: {e}"))),
            }
        }
        parse_headers(&out)
    }

    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (k, v) in headers {
            raw.put_u32(k.len() as u32);
            raw.extend_from_slice(k.to_ascii_lowercase().as_bytes());
            raw.put_u32(v.len() as u32);
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            out.reserve(1024);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| err(format!("compress headers: {e}")))?;
            pos += (self.deflate.total_in() - before) as usize;
            if pos >= raw.len() && out.capacity() > out.len() {
                break;
            }
        }
        Ok(out)
    }
}

fn parse_headers(b: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let mut b = b;
    if b.len() < 4 {
        return Err(err("short header block"));
    }
    let n = b.get_u32() as usize;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let mut field = || -> Result<String, SpdyError> {
            if b.len() < 4 {
                return Err(err("short header block"));
            }
            let len = b.get_u32() as usize;
            if b.len() < len {
                return Err(err("short header block"));
            }
            let s = String::from_utf8_lossy(&b[..len]).into_owned();
            b.advance(len);
            Ok(s)
        };
        let name = field()?.to_ascii_lowercase();
        let value = field()?;
        for v in value.split('\0') {
            out.push((name.clone(), v.to_string()));
        }
    }
    Ok(out)
}

/// A frame the session received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        id: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    Data {
        id: u32,
        fin: bool,
        data: Bytes,
    },
    RstStream {
        id: u32,
    },
    Ping {
        id: u32,
    },
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY: nothing to do.
    Other,
}

/// Parses one frame from the front of `buf` if it is complete.
pub fn parse_frame(
    buf: &mut BytesMut,
    codec: &mut HeaderCodec,
) -> Result<Option<Frame>, SpdyError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
    if len > MAX_FRAME {
        return Err(err(format!("frame of {len} bytes is too large")));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let mut f = buf.split_to(8 + len).freeze();
    let first = f.get_u32();
    let flags = f.get_u8();
    f.advance(3);
    if first & 0x8000_0000 == 0 {
        return Ok(Some(Frame::Data {
            id: first & 0x7fff_ffff,
            fin: flags & FLAG_FIN != 0,
            data: f,
        }));
    }
    let version = ((first >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(err(format!("unsupported SPDY version {version}")));
    }
    let kind = (first & 0xffff) as u16;
    Ok(Some(match kind {
        SYN_STREAM => {
            if f.len() < 10 {
                return Err(err("short SYN_STREAM"));
            }
            let id = f.get_u32() & 0x7fff_ffff;
            f.advance(6); // associated stream, priority, slot
            let headers = codec.decode(&f)?;
            Frame::SynStream {
                id,
                fin: flags & FLAG_FIN != 0,
                headers,
            }
        }
        RST_STREAM => {
            if f.len() < 8 {
                return Err(err("short RST_STREAM"));
            }
            Frame::RstStream {
                id: f.get_u32() & 0x7fff_ffff,
            }
        }
        PING => {
            if f.len() < 4 {
                return Err(err("short PING"));
            }
            Frame::Ping { id: f.get_u32() }
        }
        GOAWAY => Frame::GoAway,
        SYN_REPLY => {
            // We never open streams, but keep the compression state in sync.
            if f.len() >= 4 {
                f.advance(4);
                codec.decode(&f)?;
            }
            Frame::Other
        }
        8 => {
            // HEADERS: keep the compression state in sync.
            if f.len() >= 4 {
                f.advance(4);
                codec.decode(&f)?;
            }
            Frame::Other
        }
        _ => Frame::Other,
    }))
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + payload.len());
    b.put_u32(0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind));
    b.put_u32((u32::from(flags) << 24) | payload.len() as u32);
    b.extend_from_slice(payload);
    b.freeze()
}

pub fn syn_reply(id: u32, fin: bool, block: &[u8]) -> Bytes {
    let mut p = Vec::with_capacity(4 + block.len());
    p.put_u32(id & 0x7fff_ffff);
    p.extend_from_slice(block);
    control(SYN_REPLY, if fin { FLAG_FIN } else { 0 }, &p)
}

pub fn data(id: u32, fin: bool, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + payload.len());
    b.put_u32(id & 0x7fff_ffff);
    b.put_u32((u32::from(if fin { FLAG_FIN } else { 0 }) << 24) | payload.len() as u32);
    b.extend_from_slice(payload);
    b.freeze()
}

pub fn rst_stream(id: u32, status: u32) -> Bytes {
    let mut p = Vec::with_capacity(8);
    p.put_u32(id & 0x7fff_ffff);
    p.put_u32(status);
    control(RST_STREAM, 0, &p)
}

pub fn ping(id: u32) -> Bytes {
    control(PING, 0, &id.to_be_bytes())
}

pub fn goaway(last: u32) -> Bytes {
    let mut p = Vec::with_capacity(8);
    p.put_u32(last & 0x7fff_ffff);
    p.put_u32(0);
    control(GOAWAY, 0, &p)
}

/// A stream the peer opened.
pub struct Stream {
    pub id: u32,
    pub headers: Vec<(String, String)>,
    /// Data from the peer; closed at its FIN or reset.
    pub rx: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Bytes>,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A handle to send on this stream (cloneable, usable after `rx` moved away).
    pub fn sender(&self) -> StreamSender {
        StreamSender {
            id: self.id,
            out: self.out.clone(),
        }
    }
}

/// Sends data on a stream.
#[derive(Clone)]
pub struct StreamSender {
    id: u32,
    out: mpsc::Sender<Bytes>,
}

impl StreamSender {
    pub async fn write(&self, mut payload: &[u8]) -> bool {
        while !payload.is_empty() {
            let n = payload.len().min(MAX_DATA);
            if self
                .out
                .send(data(self.id, false, &payload[..n]))
                .await
                .is_err()
            {
                return false;
            }
            payload = &payload[n..];
        }
        true
    }

    /// Half-closes our side (FIN).
    pub async fn close(&self) {
        let _ = self.out.send(data(self.id, true, &[])).await;
    }

    pub async fn reset(&self) {
        let _ = self.out.send(rst_stream(self.id, RST_CANCEL)).await;
    }
}

/// Runs a server session: frames from `incoming` bytes, replies and data to `outgoing`;
/// new streams (already replied to) go to `accepted`. Returns when either side ends.
pub async fn serve(
    mut incoming: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Sender<Bytes>,
    accepted: mpsc::Sender<Stream>,
) -> Result<(), SpdyError> {
    let mut recv_codec = HeaderCodec::default();
    let mut send_codec = HeaderCodec::default();
    let mut buf = BytesMut::new();
    let mut streams: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut last_id = 0;
    loop {
        let Some(chunk) = incoming.recv().await else {
            return Ok(());
        };
        buf.extend_from_slice(&chunk);
        while let Some(frame) = parse_frame(&mut buf, &mut recv_codec)? {
            match frame {
                Frame::SynStream { id, fin, headers } => {
                    last_id = last_id.max(id);
                    let block = send_codec.encode(&[])?;
                    if outgoing.send(syn_reply(id, false, &block)).await.is_err() {
                        return Ok(());
                    }
                    let (tx, rx) = mpsc::channel(64);
                    if !fin {
                        streams.insert(id, tx);
                    }
                    let s = Stream {
                        id,
                        headers,
                        rx,
                        out: outgoing.clone(),
                    };
                    if accepted.send(s).await.is_err() {
                        return Ok(());
                    }
                }
                Frame::Data { id, fin, data } => {
                    if let Some(tx) = streams.get(&id)
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        streams.remove(&id);
                    }
                    if fin {
                        streams.remove(&id);
                    }
                }
                Frame::RstStream { id } => {
                    streams.remove(&id);
                }
                Frame::Ping { id } => {
                    if outgoing.send(ping(id)).await.is_err() {
                        return Ok(());
                    }
                }
                Frame::GoAway => {
                    let _ = outgoing.send(goaway(last_id)).await;
                    return Ok(());
                }
                Frame::Other => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // zlib's dictionary id: Adler-32 of the dictionary, as SPDY/3 specifies it.
        let (mut a, mut b) = (1u32, 0u32);
        for x in &d {
            a = (a + u32::from(*x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_across_frames() {
        let mut enc = HeaderCodec::default();
        let mut dec = HeaderCodec::default();
        for i in 0..3 {
            let port = format!("80{i}");
            let block = enc
                .encode(&[("streamType", "data"), ("port", &port), ("requestID", "1")])
                .unwrap();
            let h = dec.decode(&block).unwrap();
            assert_eq!(
                h,
                vec![
                    ("streamtype".to_string(), "data".to_string()),
                    ("port".to_string(), port.clone()),
                    ("requestid".to_string(), "1".to_string())
                ]
            );
        }
    }

    #[test]
    fn frames_parse_and_serialize() {
        let mut enc = HeaderCodec::default();
        let mut dec = HeaderCodec::default();
        let block = enc.encode(&[("streamtype", "error")]).unwrap();
        // A SYN_STREAM as a client sends it.
        let mut p = Vec::new();
        p.put_u32(1);
        p.put_u32(0);
        p.put_u16(0);
        p.extend_from_slice(&block);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&control(SYN_STREAM, 0, &p));
        buf.extend_from_slice(&data(1, true, b"hi"));
        buf.extend_from_slice(&ping(7)[..5]);
        let f = parse_frame(&mut buf, &mut dec).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::SynStream {
                id: 1,
                fin: false,
                headers: vec![("streamtype".into(), "error".into())]
            }
        );
        let d = parse_frame(&mut buf, &mut dec).unwrap().unwrap();
        assert_eq!(
            d,
            Frame::Data {
                id: 1,
                fin: true,
                data: Bytes::from_static(b"hi")
            }
        );
        assert_eq!(
            parse_frame(&mut buf, &mut dec).unwrap(),
            None,
            "incomplete frame waits"
        );
        buf.extend_from_slice(&ping(7)[5..]);
        assert_eq!(
            parse_frame(&mut buf, &mut dec).unwrap(),
            Some(Frame::Ping { id: 7 })
        );
        let mut bad = BytesMut::from(&control(SYN_STREAM, 0, &[0u8; 4])[..]);
        assert!(parse_frame(&mut bad, &mut dec).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sessions_accept_streams_and_echo_pings() {
        let (in_tx, in_rx) = mpsc::channel(8);
        let (out_tx, mut out_rx) = mpsc::channel(8);
        let (acc_tx, mut acc_rx) = mpsc::channel(8);
        let session = tokio::spawn(serve(in_rx, out_tx, acc_tx));
        let mut enc = HeaderCodec::default();
        let block = enc
            .encode(&[("streamtype", "data"), ("port", "80")])
            .unwrap();
        let mut p = Vec::new();
        p.put_u32(3);
        p.put_u32(0);
        p.put_u16(0);
        p.extend_from_slice(&block);
        in_tx.send(control(SYN_STREAM, 0, &p)).await.unwrap();
        let mut s = acc_rx.recv().await.unwrap();
        assert_eq!(s.header("port"), Some("80"));
        let reply = out_rx.recv().await.unwrap();
        assert_eq!(&reply[..4], &[0x80, 3, 0, 2]);
        in_tx.send(data(3, false, b"abc")).await.unwrap();
        assert_eq!(&s.rx.recv().await.unwrap()[..], b"abc");
        s.sender().write(b"xyz").await;
        assert_eq!(out_rx.recv().await.unwrap(), data(3, false, b"xyz"));
        in_tx.send(ping(9)).await.unwrap();
        assert_eq!(out_rx.recv().await.unwrap(), ping(9));
        in_tx.send(data(3, true, b"")).await.unwrap();
        assert!(s.rx.recv().await.is_none(), "FIN closes the stream");
        drop(in_tx);
        session.await.unwrap().unwrap();
    }
}

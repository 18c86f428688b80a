//! HTTP/1.x message heads for the relay: a request or response head parsed in place
//! (httparse), the framing of its body (RFC 9112 §6.3), and the head sent on, written in one
//! pass: hop-by-hop fields dropped (RFC 9110 §7.6.1, including those `Connection` names), the
//! forwarding fields (`X-Forwarded-For/-Proto/-Host`) added to requests, `Connection` and
//! `Transfer-Encoding` set for the connection the head goes out on.
//!
//! Framing that could be read two ways is refused rather than guessed: a request with both
//! `Transfer-Encoding` and `Content-Length`, differing lengths, or a transfer coding other
//! than a final `chunked`.

use std::io::Write;

/// Header fields per head.
pub const MAX_HEADERS: usize = 128;
/// Bytes per head.
pub const MAX_HEAD: usize = 64 * 1024;

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Up to the end of the connection (responses only).
    UntilClose,
}

/// Why a head cannot be forwarded; the status to answer (requests) and a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadError {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> HeadError {
    HeadError {
        status: 400,
        reason,
    }
}

impl From<httparse::Error> for HeadError {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::TooManyHeaders => HeadError {
                status: 431,
                reason: "too many header fields",
            },
            _ => bad("malformed message head"),
        }
    }
}

/// What the request said, kept for routing and the access log (reused between requests).
#[derive(Debug, Default)]
pub struct RequestInfo {
    pub method: String,
    /// From `Host`, or from an absolute-form target.
    pub host: String,
    /// The target's path (no query), for routing.
    pub path: String,
}

/// A parsed request head.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// Bytes of the head in the buffer.
    pub len: usize,
    /// Minor version: 0 or 1.
    pub version: u8,
    pub framing: Framing,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` field (WebSocket and the like).
    pub upgrade: bool,
    /// `Expect: 100-continue` (answered by the relay, not forwarded).
    pub expect_continue: bool,
    pub is_head: bool,
}

/// What the relay adds to requests.
pub struct Forwarding<'a> {
    pub client_ip: &'a str,
    pub scheme: &'a str,
}

fn is(name: &str, lower: &str) -> bool {
    name.eq_ignore_ascii_case(lower)
}

/// The comma-separated tokens of a field value.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

fn has_token(headers: &[httparse::Header<'_>], field: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| is(h.name, field))
        .flat_map(|h| tokens(h.value))
        .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Fields that describe one connection, not the message (RFC 9110 §7.6.1), lower case.
pub(crate) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is a hop-by-hop field, always or because `Connection` names it.
fn hop_by_hop(headers: &[httparse::Header<'_>], name: &str, has_connection: bool) -> bool {
    HOP_BY_HOP.iter().any(|h| is(name, h))
        || (has_connection && has_token(headers, "connection", name))
}

/// `Content-Length` (all fields and list members must agree) and whether
/// `Transfer-Encoding` ends in `chunked`; `Err` for framing that cannot be trusted.
fn framing_fields(
    headers: &[httparse::Header<'_>],
) -> Result<(Option<u64>, Option<bool>), &'static str> {
    let mut length: Option<u64> = None;
    let mut chunked: Option<bool> = None;
    for h in headers {
        if is(h.name, "content-length") {
            for t in tokens(h.value) {
                if t.is_empty() || !t.iter().all(u8::is_ascii_digit) || t.len() > 18 {
                    return Err("invalid Content-Length");
                }
                let n = std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("invalid Content-Length")?;
                if length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length fields");
                }
                length = Some(n);
            }
        } else if is(h.name, "transfer-encoding") {
            // Only the last coding decides; a later field continues the list.
            if let Some(last) = tokens(h.value).filter(|t| !t.is_empty()).last() {
                chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
        }
    }
    Ok((length, chunked))
}

fn push(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(p);
    }
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    push(out, &[name.as_bytes(), b": ", value, b"\r\n"]);
}

/// Parses the request head at the start of `buf`; `Ok(None)` while it is incomplete. On
/// success the head to send upstream (HTTP/1.1, origin-form target) is in `out`.
pub fn parse_request(
    buf: &[u8],
    fwd: &Forwarding<'_>,
    info: &mut RequestInfo,
    out: &mut Vec<u8>,
) -> Result<Option<Request>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(bad("incomplete request line"));
    };
    let headers: &[httparse::Header<'_>] = req.headers;
    if method == "CONNECT" {
        return Err(HeadError {
            status: 405,
            reason: "CONNECT is not proxied",
        });
    }

    // The target: origin-form, or absolute-form whose authority stands for Host.
    let (authority, origin) = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => match rest.find(['/', '?']) {
            Some(i) => (Some(&rest[..i]), &rest[i..]),
            None => (Some(rest), ""),
        },
        None => (None, target),
    };
    if !(origin.starts_with('/') || origin.is_empty() || origin.starts_with('?') || origin == "*") {
        return Err(bad("request target is not a path"));
    }
    let host_field = headers.iter().find(|h| is(h.name, "host")).map(|h| h.value);
    let host = match (authority, host_field) {
        (Some(a), _) => a.as_bytes(),
        (None, Some(h)) => h,
        (None, None) if version == 1 => return Err(bad("HTTP/1.1 request without Host")),
        (None, None) => b"",
    };
    let host = std::str::from_utf8(host).map_err(|_| bad("Host is not text"))?;
    info.method.clear();
    info.method.push_str(method);
    info.host.clear();
    info.host.push_str(host);
    info.path.clear();
    let path = origin.split(['?', '#']).next().unwrap_or("");
    info.path.push_str(if path.is_empty() { "/" } else { path });

    let (length, chunked) = framing_fields(headers).map_err(bad)?;
    let framing = match (chunked, length) {
        (Some(_), Some(_)) => return Err(bad("both Transfer-Encoding and Content-Length")),
        (Some(_), None) if version == 0 => return Err(bad("Transfer-Encoding in HTTP/1.0")),
        (Some(true), None) => Framing::Chunked,
        (Some(false), None) => return Err(bad("transfer coding other than chunked")),
        (None, Some(0)) | (None, None) => Framing::None,
        (None, Some(n)) => Framing::Length(n),
    };
    let has_connection = headers.iter().any(|h| is(h.name, "connection"));
    let keep_alive = if version == 1 {
        !has_token(headers, "connection", "close")
    } else {
        has_token(headers, "connection", "keep-alive")
    };
    let upgrade_value = headers
        .iter()
        .find(|h| is(h.name, "upgrade"))
        .map(|h| h.value)
        .filter(|_| has_token(headers, "connection", "upgrade"));
    let expect_continue = headers
        .iter()
        .any(|h| is(h.name, "expect") && h.value.eq_ignore_ascii_case(b"100-continue"));

    out.clear();
    push(out, &[method.as_bytes(), b" "]);
    if !origin.starts_with('/') && origin != "*" {
        out.push(b'/');
    }
    push(out, &[origin.as_bytes(), b" HTTP/1.1\r\n"]);
    let mut xff: Option<&[u8]> = None;
    let mut more_xff = false;
    for h in headers {
        let n = h.name;
        if hop_by_hop(headers, n, has_connection)
            || is(n, "x-forwarded-proto")
            || is(n, "x-forwarded-host")
            || (expect_continue && is(n, "expect"))
        {
            continue;
        }
        if is(n, "x-forwarded-for") {
            if xff.is_some() {
                more_xff = true;
            }
            xff = xff.or(Some(h.value));
            continue;
        }
        if is(n, "host") && authority.is_some() {
            continue;
        }
        push_field(out, n, h.value);
    }
    if host_field.is_none() || authority.is_some() {
        push_field(out, "Host", host.as_bytes());
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    if more_xff {
        for h in headers.iter().filter(|h| is(h.name, "x-forwarded-for")) {
            push(out, &[h.value, b", "]);
        }
    } else if let Some(prev) = xff {
        push(out, &[prev, b", "]);
    }
    push(out, &[fwd.client_ip.as_bytes(), b"\r\n"]);
    push_field(out, "X-Forwarded-Proto", fwd.scheme.as_bytes());
    if !host.is_empty() {
        push_field(out, "X-Forwarded-Host", host.as_bytes());
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if let Some(u) = upgrade_value {
        push_field(out, "Connection", b"upgrade");
        push_field(out, "Upgrade", u);
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(Request {
        len,
        version,
        framing,
        keep_alive,
        upgrade: upgrade_value.is_some(),
        expect_continue,
        is_head: method == "HEAD",
    }))
}

/// A parsed response head and what it means for both connections.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub len: usize,
    pub status: u16,
    /// How the body arrives from upstream.
    pub framing: Framing,
    /// The upstream connection can carry another request afterwards (if the body ends cleanly).
    pub reusable: bool,
    /// The client gets only the chunk data (it speaks HTTP/1.0).
    pub dechunk: bool,
    /// The client connection closes after this response.
    pub close: bool,
}

impl Response {
    /// A 1xx head other than 101: another head follows.
    pub fn interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Parses the response head at the start of `buf` for a request `req`; `Ok(None)` while
/// incomplete. The head for the client is in `out` (empty for an interim response an
/// HTTP/1.0 client must not see).
pub fn parse_response(
    buf: &[u8],
    req: &Request,
    out: &mut Vec<u8>,
) -> Result<Option<Response>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(bad("incomplete status line"));
    };
    let reason = resp.reason.unwrap_or("");
    let headers: &[httparse::Header<'_>] = resp.headers;
    let has_connection = headers.iter().any(|h| is(h.name, "connection"));
    let (length, chunked) = framing_fields(headers).map_err(bad)?;
    let interim = (100..200).contains(&status) && status != 101;
    let switching = status == 101;
    if switching && !req.upgrade {
        return Err(bad("101 to a request that asked for no upgrade"));
    }
    let framing = if req.is_head || interim || switching || status == 204 || status == 304 {
        Framing::None
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(0)) => Framing::None,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    let upstream_keeps = if version == 1 {
        !has_token(headers, "connection", "close")
    } else {
        has_token(headers, "connection", "keep-alive")
    };
    let dechunk = framing == Framing::Chunked && req.version == 0;
    let close =
        !interim && (switching || !req.keep_alive || framing == Framing::UntilClose || dechunk);

    out.clear();
    if interim && req.version == 0 {
        return Ok(Some(Response {
            len,
            status,
            framing,
            reusable: true,
            dechunk,
            close,
        }));
    }
    let code = itoa3(status);
    push(
        out,
        &[b"HTTP/1.1 ", &code[..], b" ", reason.as_bytes(), b"\r\n"],
    );
    for h in headers {
        if hop_by_hop(headers, h.name, has_connection)
            || (is(h.name, "content-length") && chunked.is_some())
        {
            continue;
        }
        push_field(out, h.name, h.value);
    }
    if framing == Framing::Chunked && !dechunk {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if switching {
        push_field(out, "Connection", b"upgrade");
        if let Some(u) = headers.iter().find(|h| is(h.name, "upgrade")) {
            push_field(out, "Upgrade", u.value);
        }
    } else if close && !interim {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if req.version == 0 && !interim {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(Response {
        len,
        status,
        framing,
        reusable: upstream_keeps && framing != Framing::UntilClose && !switching,
        dechunk,
        close,
    }))
}

/// A three-digit status code as text.
fn itoa3(n: u16) -> [u8; 3] {
    let n = n.min(999);
    [
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

/// A complete response the relay makes itself (errors), with a text body.
pub fn own_response(out: &mut Vec<u8>, status: u16, reason: &str, text: &str, close: bool) {
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n{text}",
        text.len(),
        if close { "Connection: close\r\n" } else { "" },
    );
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;

use super::*;

const FWD: Forwarding<'static> = Forwarding {
    client_ip: "10.0.0.7",
    scheme: "http",
};

fn request(raw: &str) -> Result<(Request, RequestInfo, String), HeadError> {
    let mut info = RequestInfo::default();
    let mut out = Vec::new();
    let r = parse_request(raw.as_bytes(), &FWD, &mut info, &mut out)?.expect("complete");
    Ok((r, info, String::from_utf8(out).unwrap()))
}

fn response(raw: &str, req: &Request) -> Result<(Response, String), HeadError> {
    let mut out = Vec::new();
    let r = parse_response(raw.as_bytes(), req, &mut out)?.expect("complete");
    Ok((r, String::from_utf8(out).unwrap()))
}

fn get11() -> Request {
    request("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().0
}

#[test]
fn a_plain_get_gains_the_forwarding_fields() {
    let raw = "GET /x/y?q=1 HTTP/1.1\r\nHost: Web.Test:8080\r\nUser-Agent: t\r\nX-Forwarded-Proto: https\r\n\r\nrest";
    let (r, info, out) = request(raw).unwrap();
    assert_eq!(r.len, raw.len() - 4);
    assert_eq!(
        (r.version, r.framing, r.keep_alive),
        (1, Framing::None, true)
    );
    assert!(!r.upgrade && !r.expect_continue && !r.is_head);
    assert_eq!(
        (info.method.as_str(), info.host.as_str(), info.path.as_str()),
        ("GET", "Web.Test:8080", "/x/y")
    );
    assert_eq!(
        out,
        "GET /x/y?q=1 HTTP/1.1\r\nHost: Web.Test:8080\r\nUser-Agent: t\r\n\
         X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: Web.Test:8080\r\n\r\n"
    );
}

#[test]
fn an_incomplete_head_waits_for_more() {
    let mut info = RequestInfo::default();
    let mut out = Vec::new();
    let r = parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", &FWD, &mut info, &mut out);
    assert!(matches!(r, Ok(None)));
}

#[test]
fn x_forwarded_for_is_appended_to() {
    let (_, _, out) =
        request("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n").unwrap();
    assert!(
        out.contains("X-Forwarded-For: 1.1.1.1, 10.0.0.7\r\n"),
        "{out}"
    );
    let (_, _, out) = request(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\r\n",
    )
    .unwrap();
    assert!(
        out.contains("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.7\r\n"),
        "{out}"
    );
    assert_eq!(out.matches("orwarded-For").count(), 1, "{out}");
}

#[test]
fn hop_by_hop_fields_and_those_connection_names_are_dropped() {
    let (r, _, out) = request(
        "POST /p HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n\
         X-Secret: s\r\nTE: trailers\r\nProxy-Authorization: basic x\r\nExpect: 100-continue\r\n\
         Content-Length: 3\r\nX-Kept: k\r\n\r\nabc",
    )
    .unwrap();
    assert_eq!(r.framing, Framing::Length(3));
    assert!(r.expect_continue && r.keep_alive);
    for gone in [
        "Connection",
        "Keep-Alive",
        "X-Secret",
        "TE:",
        "Proxy-",
        "Expect",
    ] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    assert!(out.contains("Content-Length: 3\r\nX-Kept: k\r\n"), "{out}");
}

#[test]
fn an_absolute_target_becomes_origin_form_and_names_the_host() {
    let (_, info, out) =
        request("GET http://b.test:81?x=1 HTTP/1.1\r\nHost: ignored\r\n\r\n").unwrap();
    assert_eq!((info.host.as_str(), info.path.as_str()), ("b.test:81", "/"));
    assert!(out.starts_with("GET /?x=1 HTTP/1.1\r\n"), "{out}");
    assert!(
        out.contains("Host: b.test:81\r\n") && !out.contains("ignored"),
        "{out}"
    );
}

#[test]
fn http_1_0_keeps_alive_only_when_asked_and_gets_a_host() {
    let (r, info, out) = request("GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!((r.version, r.keep_alive), (0, false));
    assert_eq!(info.host, "");
    assert!(out.starts_with("GET / HTTP/1.1\r\nHost: \r\n"), "{out}");
    assert!(!out.contains("X-Forwarded-Host"), "{out}");
    let (r, _, _) = request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
    assert!(r.keep_alive);
    let (r, _, _) = request("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
    assert!(!r.keep_alive);
}

#[test]
fn chunked_requests_are_forwarded_chunked() {
    let (r, _, out) =
        request("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
    assert_eq!(r.framing, Framing::Chunked);
    assert!(out.ends_with("Transfer-Encoding: chunked\r\n\r\n"), "{out}");
    assert_eq!(out.matches("Transfer-Encoding").count(), 1, "{out}");
}

#[test]
fn ambiguous_or_unframed_requests_are_refused() {
    for (raw, status) in [
        ("GET / HTTP/1.1\r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            400,
        ),
        ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        ("GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ] {
        assert_eq!(request(raw).unwrap_err().status, status, "{raw:?}");
    }
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("X-{i}: v\r\n"))
        .collect();
    let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    assert_eq!(request(&raw).unwrap_err().status, 431);
    // Equal lengths repeated are one length.
    let (r, _, _) = request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\n").unwrap();
    assert_eq!(r.framing, Framing::Length(2));
}

#[test]
fn upgrades_keep_their_upgrade_fields() {
    let (r, _, out) = request(
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
    )
    .unwrap();
    assert!(r.upgrade);
    assert!(out.contains("Sec-WebSocket-Key: k\r\n"), "{out}");
    assert!(
        out.ends_with("Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
        "{out}"
    );
    // `Upgrade` without `Connection: upgrade` is only a field to drop.
    let (r, _, out) = request("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n").unwrap();
    assert!(!r.upgrade && !out.contains("pgrade"), "{out}");

    let (resp, out) = response(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\n\r\n",
        &r_upgrade(),
    )
    .unwrap();
    assert_eq!(
        (resp.framing, resp.reusable, resp.close),
        (Framing::None, false, true)
    );
    assert_eq!(
        out,
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    );
    assert!(response("HTTP/1.1 101 Switching Protocols\r\n\r\n", &get11()).is_err());
}

fn r_upgrade() -> Request {
    request("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        .unwrap()
        .0
}

#[test]
fn a_keep_alive_response_passes_with_its_length() {
    let (r, out) = response(
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n0123456789",
        &get11(),
    )
    .unwrap();
    assert_eq!((r.status, r.framing), (200, Framing::Length(10)));
    assert!(r.reusable && !r.close && !r.dechunk);
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 10\r\n\r\n"
    );
}

#[test]
fn response_framing_follows_the_request_and_the_status() {
    let head = request("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().0;
    let (r, out) = response("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", &head).unwrap();
    assert_eq!(r.framing, Framing::None);
    assert!(out.contains("Content-Length: 99"), "{out}");
    for s in ["204 No Content", "304 Not Modified"] {
        let (r, _) = response(&format!("HTTP/1.1 {s}\r\n\r\n"), &get11()).unwrap();
        assert_eq!((r.framing, r.reusable), (Framing::None, true), "{s}");
    }
    // No length: the body runs to the end of the connection, which then closes both ways.
    let (r, out) = response("HTTP/1.1 200 OK\r\n\r\n", &get11()).unwrap();
    assert_eq!(
        (r.framing, r.reusable, r.close),
        (Framing::UntilClose, false, true)
    );
    assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");
    // Upstream closes: not reused, the client keeps its connection.
    let (r, _) = response(
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
        &get11(),
    )
    .unwrap();
    assert!(!r.reusable && !r.close);
    assert!(response("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", &get11()).is_err());
}

#[test]
fn chunked_responses_pass_chunked_or_are_dechunked_for_http_1_0() {
    let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
    let (r, out) = response(raw, &get11()).unwrap();
    assert_eq!(
        (r.framing, r.dechunk, r.close),
        (Framing::Chunked, false, false)
    );
    assert_eq!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    let old = request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap()
        .0;
    let (r, out) = response(raw, &old).unwrap();
    assert!(r.dechunk && r.close);
    assert_eq!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    let (r, out) = response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &old).unwrap();
    assert!(!r.close);
    assert!(out.ends_with("Connection: keep-alive\r\n\r\n"), "{out}");
}

#[test]
fn interim_responses_are_passed_on_except_to_http_1_0() {
    let (r, out) = response(
        "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
        &get11(),
    )
    .unwrap();
    assert!(r.interim() && !r.close);
    assert_eq!(out, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n");
    let old = request("GET / HTTP/1.0\r\n\r\n").unwrap().0;
    let (r, out) = response("HTTP/1.1 100 Continue\r\n\r\n", &old).unwrap();
    assert!(r.interim() && out.is_empty());
}

#[test]
fn own_responses_are_complete() {
    let mut out = Vec::new();
    own_response(&mut out, 404, "Not Found", "404 page not found\n", true);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n"
    );
}

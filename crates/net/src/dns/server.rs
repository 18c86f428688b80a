//! The node's cluster DNS server: answers cluster names from the [`DnsIndex`] and relays
//! every other query, unchanged, to the upstream resolvers (the host's `resolv.conf`).
//! UDP and TCP (RFC 1035 length-prefixed) on one address.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::dns::index::{DnsIndex, Lookup};
use crate::error::{NetError, Result};

/// TTL of cluster records (CoreDNS's default for the kubernetes plugin).
const TTL: u32 = 5;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The index the server answers from, swapped whole when the cluster changes.
#[derive(Clone, Default)]
pub struct SharedIndex(Arc<RwLock<Arc<DnsIndex>>>);

impl SharedIndex {
    pub fn set(&self, idx: DnsIndex) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(idx);
    }

    pub fn get(&self) -> Arc<DnsIndex> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Nameservers of a resolv.conf text, minus `exclude` (the cluster DNS address: no loops).
pub fn upstreams_from_resolv_conf(text: &str, exclude: &[IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("nameserver")).then(|| f.next()).flatten()
        })
        .filter_map(|s| s.split('%').next().and_then(|s| s.parse::<IpAddr>().ok()))
        .filter(|ip| !exclude.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

pub struct DnsServer {
    index: SharedIndex,
    upstreams: Vec<SocketAddr>,
}

impl DnsServer {
    pub fn new(index: SharedIndex, upstreams: Vec<SocketAddr>) -> Arc<DnsServer> {
        Arc::new(DnsServer { index, upstreams })
    }

    /// Binds UDP and TCP on `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| NetError::io("binding DNS (UDP) on", addr.to_string(), e))?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| NetError::io("binding DNS (TCP) on", addr.to_string(), e))?;
        Ok((udp, tcp))
    }

    /// Serves until `shutdown`.
    pub async fn serve(
        self: Arc<Self>,
        udp: UdpSocket,
        tcp: TcpListener,
        shutdown: CancellationToken,
    ) {
        let udp = Arc::new(udp);
        let mut buf = vec![0u8; 65535];
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = udp.recv_from(&mut buf) => {
                    let Ok((n, peer)) = r else { continue };
                    let query = buf[..n].to_vec();
                    let me = self.clone();
                    let sock = udp.clone();
                    tokio::spawn(async move {
                        if let Some(reply) = me.answer(&query, false).await {
                            let _ = sock.send_to(&reply, peer).await;
                        }
                    });
                }
                r = tcp.accept() => {
                    let Ok((stream, _)) = r else { continue };
                    let me = self.clone();
                    let stop = shutdown.clone();
                    tokio::spawn(async move { me.tcp_connection(stream, stop).await });
                }
            }
        }
    }

    async fn tcp_connection(self: Arc<Self>, mut stream: TcpStream, shutdown: CancellationToken) {
        loop {
            let mut len = [0u8; 2];
            let read = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut len)) => r,
            };
            if !matches!(read, Ok(Ok(_))) {
                return;
            }
            let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
            if stream.read_exact(&mut query).await.is_err() {
                return;
            }
            let Some(reply) = self.answer(&query, true).await else {
                return;
            };
            let Ok(n) = u16::try_from(reply.len()) else {
                return;
            };
            if stream.write_all(&n.to_be_bytes()).await.is_err()
                || stream.write_all(&reply).await.is_err()
            {
                return;
            }
        }
    }

    /// The reply to one query message (`None`: drop it, e.g. not a query at all).
    pub async fn answer(&self, raw: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let req = match Message::from_vec(raw) {
            Ok(m) => m,
            Err(_) => {
                // Answer FORMERR when at least the id can be read.
                let id = u16::from_be_bytes([*raw.first()?, *raw.get(1)?]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                    .to_vec()
                    .ok();
            }
        };
        if req.metadata.message_type != MessageType::Query {
            return None;
        }
        let idx = self.index.get();
        let q = match (req.metadata.op_code, req.queries.as_slice()) {
            (OpCode::Query, [q]) => q.clone(),
            _ => return self.reply(&req, ResponseCode::NotImp, vec![], vec![], tcp),
        };
        let name = q.name().to_ascii();
        match idx.lookup(&name) {
            Lookup::Outside => self.forward(raw, &req, tcp).await,
            Lookup::NotFound => {
                let soa = soa_record(idx.domain());
                self.reply(
                    &req,
                    ResponseCode::NXDomain,
                    vec![],
                    soa.into_iter().collect(),
                    tcp,
                )
            }
            Lookup::Found(entry) => {
                let owner = q.name().clone();
                let mut answers = Vec::new();
                let mut additionals = Vec::new();
                let want = q.query_type();
                if let Some(target) = &entry.cname {
                    if let Ok(t) = Name::from_ascii(format!("{target}.")) {
                        answers.push(Record::from_rdata(
                            owner.clone(),
                            TTL,
                            RData::CNAME(CNAME(t.clone())),
                        ));
                        if want == RecordType::A || want == RecordType::AAAA {
                            answers.extend(self.resolve_upstream(&t, want).await);
                        }
                    }
                } else {
                    if matches!(want, RecordType::A | RecordType::ANY) {
                        answers.extend(
                            entry
                                .a
                                .iter()
                                .map(|ip| Record::from_rdata(owner.clone(), TTL, RData::A(A(*ip)))),
                        );
                    }
                    if matches!(want, RecordType::AAAA | RecordType::ANY) {
                        answers.extend(entry.aaaa.iter().map(|ip| {
                            Record::from_rdata(owner.clone(), TTL, RData::AAAA(AAAA(*ip)))
                        }));
                    }
                    if matches!(want, RecordType::SRV | RecordType::ANY) {
                        for s in &entry.srv {
                            let Ok(target) = Name::from_ascii(format!("{}.", s.target)) else {
                                continue;
                            };
                            answers.push(Record::from_rdata(
                                owner.clone(),
                                TTL,
                                RData::SRV(SRV::new(s.priority, s.weight, s.port, target.clone())),
                            ));
                            if let Lookup::Found(t) = idx.lookup(&s.target) {
                                additionals.extend(t.a.iter().map(|ip| {
                                    Record::from_rdata(target.clone(), TTL, RData::A(A(*ip)))
                                }));
                                additionals.extend(t.aaaa.iter().map(|ip| {
                                    Record::from_rdata(target.clone(), TTL, RData::AAAA(AAAA(*ip)))
                                }));
                            }
                        }
                    }
                    if matches!(want, RecordType::PTR | RecordType::ANY) {
                        for p in &entry.ptr {
                            if let Ok(t) = Name::from_ascii(format!("{p}.")) {
                                answers.push(Record::from_rdata(
                                    owner.clone(),
                                    TTL,
                                    RData::PTR(PTR(t)),
                                ));
                            }
                        }
                    }
                }
                let authorities = if answers.is_empty() {
                    soa_record(idx.domain()).into_iter().collect()
                } else {
                    vec![]
                };
                let mut msg = response(&req, ResponseCode::NoError);
                msg.answers = answers;
                msg.authorities = authorities;
                msg.additionals = additionals;
                encode(msg, &req, tcp)
            }
        }
    }

    fn reply(
        &self,
        req: &Message,
        code: ResponseCode,
        answers: Vec<Record>,
        authorities: Vec<Record>,
        tcp: bool,
    ) -> Option<Vec<u8>> {
        let mut msg = response(req, code);
        msg.answers = answers;
        msg.authorities = authorities;
        encode(msg, req, tcp)
    }

    /// Relays the query to the upstream resolvers, first answer wins; SERVFAIL if none answers.
    async fn forward(&self, raw: &[u8], req: &Message, tcp: bool) -> Option<Vec<u8>> {
        for upstream in &self.upstreams {
            let r = if tcp {
                relay_tcp(*upstream, raw).await
            } else {
                relay_udp(*upstream, raw, req.metadata.id).await
            };
            match r {
                Ok(reply) => return Some(reply),
                Err(e) => tracing::debug!(%upstream, error = %e, "upstream DNS did not answer"),
            }
        }
        self.reply(req, ResponseCode::ServFail, vec![], vec![], tcp)
    }

    /// A/AAAA of an outside name (for ExternalName Services).
    async fn resolve_upstream(&self, name: &Name, ty: RecordType) -> Vec<Record> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name.clone(), ty));
        let Ok(raw) = m.to_vec() else { return vec![] };
        for upstream in &self.upstreams {
            if let Ok(reply) = relay_udp(*upstream, &raw, m.metadata.id).await
                && let Ok(msg) = Message::from_vec(&reply)
            {
                return msg.answers;
            }
        }
        vec![]
    }
}

fn response(req: &Message, code: ResponseCode) -> Message {
    let mut msg = Message::response(req.metadata.id, req.metadata.op_code);
    msg.metadata.recursion_desired = req.metadata.recursion_desired;
    msg.metadata.recursion_available = true;
    msg.metadata.authoritative = code != ResponseCode::ServFail;
    msg.metadata.response_code = code;
    msg.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(1232);
        msg.edns = Some(edns);
    }
    msg
}

/// Encodes, truncating (TC) what does not fit the client's UDP size.
fn encode(msg: Message, req: &Message, tcp: bool) -> Option<Vec<u8>> {
    let bytes = msg.to_vec().ok()?;
    if tcp || bytes.len() <= usize::from(req.max_payload()) {
        return Some(bytes);
    }
    msg.truncate().to_vec().ok()
}

fn soa_record(domain: &str) -> Option<Record> {
    let zone = Name::from_ascii(format!("{domain}.")).ok()?;
    let mname = Name::from_ascii(format!("ns.dns.{domain}.")).ok()?;
    let rname = Name::from_ascii(format!("hostmaster.{domain}.")).ok()?;
    let mut r = Record::from_rdata(
        zone,
        TTL,
        RData::SOA(SOA::new(mname, rname, 1, 7200, 1800, 86400, TTL)),
    );
    r.dns_class = DNSClass::IN;
    Some(r)
}

async fn relay_udp(upstream: SocketAddr, raw: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(upstream).await?;
    sock.send(raw).await?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
        // Ignore stray datagrams that are not the answer to this query.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return Ok(buf[..n].to_vec());
        }
    }
}

async fn relay_tcp(upstream: SocketAddr, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let work = async {
        let mut s = TcpStream::connect(upstream).await?;
        let n = u16::try_from(raw.len()).map_err(|_| std::io::Error::other("query too long"))?;
        s.write_all(&n.to_be_bytes()).await?;
        s.write_all(raw).await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut reply).await?;
        Ok(reply)
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, work)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(upstreams: Vec<SocketAddr>) -> Arc<DnsServer> {
        let svc: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}}))
            .unwrap();
        let idx = SharedIndex::default();
        idx.set(DnsIndex::build("cluster.local", [&svc], [], []));
        DnsServer::new(idx, upstreams)
    }

    fn query(name: &str, ty: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
        m.to_vec().unwrap()
    }

    #[tokio::test]
    async fn answers_cluster_names_and_nxdomain_with_soa() {
        let s = server(vec![]);
        let r = Message::from_vec(
            &s.answer(
                &query("web.default.svc.cluster.local.", RecordType::A),
                false,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(
            r.answers[0].data,
            RData::A(A("10.43.0.20".parse().unwrap()))
        );
        let r = Message::from_vec(
            &s.answer(
                &query("web.default.svc.cluster.local.", RecordType::AAAA),
                false,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(
            r.answers.is_empty() && r.authorities.len() == 1,
            "NODATA with SOA"
        );
        let r = Message::from_vec(
            &s.answer(
                &query("nope.default.svc.cluster.local.", RecordType::A),
                false,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        let r = Message::from_vec(
            &s.answer(
                &query("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV),
                false,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.additionals.len(), 1, "the target's address comes along");
    }

    #[tokio::test]
    async fn other_names_are_relayed_unchanged_to_upstream() {
        // An upstream that answers every query with a fixed A record.
        let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = up.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            while let Ok((n, peer)) = up.recv_from(&mut buf).await {
                let q = Message::from_vec(&buf[..n]).unwrap();
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.queries = q.queries.clone();
                r.answers.push(Record::from_rdata(
                    q.queries[0].name().clone(),
                    60,
                    RData::A(A("192.0.2.7".parse().unwrap())),
                ));
                up.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
            }
        });
        let s = server(vec![addr]);
        let r = Message::from_vec(
            &s.answer(&query("example.org.", RecordType::A), false)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(r.answers[0].data, RData::A(A("192.0.2.7".parse().unwrap())));
        assert_eq!(r.answers[0].ttl, 60, "relayed as the upstream sent it");
        // No upstream answers: SERVFAIL.
        let dead = server(vec!["127.0.0.1:9".parse().unwrap()]);
        let r = Message::from_vec(
            &dead
                .answer(&query("example.org.", RecordType::A), false)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn resolv_conf_upstreams_skip_the_cluster_dns() {
        let ups = upstreams_from_resolv_conf(
            "# c\nnameserver 10.43.0.10\nnameserver 127.0.0.53\nsearch x\nnameserver fe80::1%eth0\n",
            &["10.43.0.10".parse().unwrap()],
        );
        assert_eq!(
            ups,
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn garbage_gets_formerr_or_nothing() {
        let s = server(vec![]);
        let r = Message::from_vec(&s.answer(&[0x12, 0x34, 0xff], false).await.unwrap()).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        assert!(s.answer(&[0x12], false).await.is_none());
    }
}

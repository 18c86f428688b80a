//! Configuration of [`crate::EtcdStore`]: endpoints and timeouts, parsed from the
//! `--datastore-endpoint` value.

use std::time::Duration;

use crate::Error;

/// Where and how to reach etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs (`http://host:port`); requests are balanced over them.
    pub endpoints: Vec<String>,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time limit of one request (a watch is not limited).
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// Parses a datastore endpoint: `etcd://h1:2379,h2:2379` or a comma-separated list of
    /// `http://host:port` URLs. TLS (`https://`) is not supported yet.
    pub fn parse(endpoint: &str) -> Result<EtcdConfig, Error> {
        let bad = |reason: String| Error::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason,
        };
        let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| {
            bad("expected etcd://host:port[,host:port...] or http://host:port".into())
        })?;
        if scheme == "https" {
            return Err(bad(
                "TLS connections to etcd are not supported yet; use http://".into(),
            ));
        }
        if scheme != "etcd" && scheme != "http" {
            return Err(bad(format!("unknown scheme {scheme:?} (etcd or http)")));
        }
        let mut endpoints = Vec::new();
        for part in rest.split(',') {
            let hostport = part
                .trim()
                .strip_prefix("http://")
                .unwrap_or(part.trim())
                .trim_end_matches('/');
            let (host, port) = hostport
                .rsplit_once(':')
                .ok_or_else(|| bad(format!("{hostport:?} has no port")))?;
            if host.is_empty() {
                return Err(bad(format!("{hostport:?} has no host")));
            }
            port.parse::<u16>()
                .map_err(|_| bad(format!("{port:?} in {hostport:?} is not a port number")))?;
            endpoints.push(format!("http://{hostport}"));
        }
        Ok(EtcdConfig {
            endpoints,
            ..EtcdConfig::default()
        })
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.endpoints.is_empty() {
            return Err(Error::InvalidEndpoint {
                endpoint: String::new(),
                reason: "no endpoints given".into(),
            });
        }
        Ok(())
    }
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcd_and_http_endpoints() {
        let c = EtcdConfig::parse("etcd://h1:2379,h2:2380").unwrap();
        assert_eq!(c.endpoints, ["http://h1:2379", "http://h2:2380"]);
        let c = EtcdConfig::parse("http://127.0.0.1:2379").unwrap();
        assert_eq!(c.endpoints, ["http://127.0.0.1:2379"]);
        let c = EtcdConfig::parse("http://a:1,http://b:2").unwrap();
        assert_eq!(c.endpoints, ["http://a:1", "http://b:2"]);
    }

    #[test]
    fn bad_endpoints_say_what_is_wrong() {
        for (input, needle) in [
            ("h1:2379", "expected etcd://"),
            ("https://h1:2379", "TLS"),
            ("mysql://h1:3306", "unknown scheme"),
            ("etcd://h1", "no port"),
            ("etcd://h1:99999", "not a port number"),
            ("etcd://:2379", "no host"),
        ] {
            let err = EtcdConfig::parse(input).unwrap_err().to_string();
            assert!(
                err.contains(needle) && err.contains(input),
                "{input}: {err}"
            );
        }
    }
}

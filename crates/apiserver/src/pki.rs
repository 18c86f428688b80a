//! The cluster's PKI: a CA generated on first start, the API server's serving certificate,
//! client certificates (the admin credential in the kubeconfig, later node agents), and the
//! kubeconfig file. Keys are ECDSA P-256 (ring). Everything lives in `<data-dir>/tls/`,
//! written with mode 0600 for keys, atomically (temp file + rename).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Errors of PKI setup.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed for {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PkiError + 'a {
    move |source| PkiError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file atomically with the given mode.
pub fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(content).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    Ok(())
}

/// A certificate and its key, PEM encoded.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster CA and the certificates issued from it.
pub struct ClusterPki {
    dir: PathBuf,
    pub ca: CertPair,
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        what: what.to_string(),
        source,
    }
}

impl ClusterPki {
    /// Loads the CA from `dir`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> Result<ClusterPki, PkiError> {
        let cert = dir.join("ca.crt");
        let key = dir.join("ca.key");
        if cert.exists() && key.exists() {
            return Ok(ClusterPki {
                dir: dir.to_path_buf(),
                ca: CertPair {
                    cert_pem: std::fs::read_to_string(&cert).map_err(io("read", &cert))?,
                    key_pem: std::fs::read_to_string(&key).map_err(io("read", &key))?,
                },
            });
        }
        let kp = KeyPair::generate().map_err(gen_err("CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("CA"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "berth-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let c = params.self_signed(&kp).map_err(gen_err("CA"))?;
        let ca = CertPair {
            cert_pem: c.pem(),
            key_pem: kp.serialize_pem(),
        };
        write_file(&key, ca.key_pem.as_bytes(), 0o600)?;
        write_file(&cert, ca.cert_pem.as_bytes(), 0o644)?;
        Ok(ClusterPki {
            dir: dir.to_path_buf(),
            ca,
        })
    }

    fn issue(&self, what: &str, params: CertificateParams) -> Result<CertPair, PkiError> {
        let ca_key = KeyPair::from_pem(&self.ca.key_pem).map_err(gen_err("CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca.cert_pem, ca_key)
            .map_err(gen_err("CA certificate"))?;
        let kp = KeyPair::generate().map_err(gen_err(what))?;
        let cert = params.signed_by(&kp, &issuer).map_err(gen_err(what))?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: kp.serialize_pem(),
        })
    }

    /// A serving certificate for the given DNS names and IPs (reissued when the set changes).
    pub fn serving_cert(
        &self,
        name: &str,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<CertPair, PkiError> {
        let cert_path = self.dir.join(format!("{name}.crt"));
        let key_path = self.dir.join(format!("{name}.key"));
        let sans_path = self.dir.join(format!("{name}.sans"));
        let mut sans: Vec<String> = dns.to_vec();
        sans.extend(ips.iter().map(|i| i.to_string()));
        sans.sort();
        sans.dedup();
        let fingerprint = sans.join(",");
        if cert_path.exists()
            && key_path.exists()
            && std::fs::read_to_string(&sans_path).ok().as_deref() == Some(fingerprint.as_str())
        {
            return Ok(CertPair {
                cert_pem: std::fs::read_to_string(&cert_path).map_err(io("read", &cert_path))?,
                key_pem: std::fs::read_to_string(&key_path).map_err(io("read", &key_path))?,
            });
        }
        let mut params = CertificateParams::new(dns.to_vec()).map_err(gen_err(name))?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let pair = self.issue(name, params)?;
        write_file(&key_path, pair.key_pem.as_bytes(), 0o600)?;
        write_file(&cert_path, pair.cert_pem.as_bytes(), 0o644)?;
        write_file(&sans_path, fingerprint.as_bytes(), 0o644)?;
        Ok(pair)
    }

    /// A client certificate for `user` in `groups` (created once and kept under `name`).
    pub fn client_cert(
        &self,
        name: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<CertPair, PkiError> {
        let cert_path = self.dir.join(format!("{name}.crt"));
        let key_path = self.dir.join(format!("{name}.key"));
        if cert_path.exists() && key_path.exists() {
            return Ok(CertPair {
                cert_pem: std::fs::read_to_string(&cert_path).map_err(io("read", &cert_path))?,
                key_pem: std::fs::read_to_string(&key_path).map_err(io("read", &key_path))?,
            });
        }
        let pair = self.issue_client(user, groups)?;
        write_file(&key_path, pair.key_pem.as_bytes(), 0o600)?;
        write_file(&cert_path, pair.cert_pem.as_bytes(), 0o644)?;
        Ok(pair)
    }

    /// Issues (without storing) a client certificate.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<CertPair, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err(user))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        for g in groups {
            dn.push(DnType::OrganizationName, *g);
        }
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        self.issue(user, params)
    }
}

/// A kubeconfig for `server` authenticating with a client certificate.
pub fn kubeconfig(
    server: &str,
    ca_pem: &str,
    client: &CertPair,
    cluster: &str,
    user: &str,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: {cluster}
contexts:
- context:
    cluster: {cluster}
    user: {user}
  name: {cluster}
current-context: {cluster}
preferences: {{}}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = b64(ca_pem),
        cert = b64(&client.cert_pem),
        key = b64(&client.key_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_created_once_and_issues_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(dir.path()).unwrap();
        let again = ClusterPki::load_or_create(dir.path()).unwrap();
        assert_eq!(pki.ca.cert_pem, again.ca.cert_pem);
        let s = pki
            .serving_cert(
                "apiserver",
                &["localhost".into()],
                &["127.0.0.1".parse().unwrap()],
            )
            .unwrap();
        assert!(s.cert_pem.contains("BEGIN CERTIFICATE"));
        let c = pki
            .client_cert("admin", "system:admin", &["system:masters"])
            .unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(c.cert_pem.as_bytes()).unwrap();
        let x = pem.parse_x509().unwrap();
        let cn: Vec<_> = x
            .subject()
            .iter_common_name()
            .filter_map(|c| c.as_str().ok())
            .collect();
        assert_eq!(cn, vec!["system:admin"]);
        let kc = kubeconfig(
            "https://127.0.0.1:6443",
            &pki.ca.cert_pem,
            &c,
            "default",
            "default",
        );
        assert!(kc.contains("client-certificate-data"));
    }
}

//! Pod address management for one node's podCIDR, persisted as one file per address.
//!
//! `<dir>/<ip>` holds the owner's record (sandbox id, namespace path and identity, host
//! interface). A record is written to a temporary file first and then hard-linked to its
//! address name: `link()` fails if the name exists, so an address is reserved atomically and
//! never with a half-written record, and two owners can never get the same address, even
//! across processes or after a crash. Allocation continues after the last address handed
//! out (`<dir>/last_reserved`), so a released address is not reused at once. Records whose
//! namespace is gone are released by [`Ipam::release_where`], which is how addresses stay
//! leak-free when a teardown was missed.
//!
//! Records are not `fsync`ed. What they guard is the address of a live sandbox, and a
//! sandbox's network namespace does not outlive the kernel: after an agent crash the page
//! cache still holds every record, and after a power loss or kernel crash no namespace a
//! record could name exists any more (a record lost or emptied then is unreadable or dead,
//! and released like any other). Two syncs per address cost ~7 ms each on the test machines
//! and were taken one pod at a time under the store's lock: most of a 100-pod burst's wait
//! in `bench/podstart`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};
use crate::netns::NetnsId;

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub sandbox_id: String,
    /// `namespace/name` of the pod, for people reading the directory.
    pub pod: String,
    pub netns: PathBuf,
    /// The namespace the path named at setup.
    pub netns_id: Option<NetnsId>,
    /// The host end of the sandbox's veth pair.
    pub host_interface: String,
}

/// The address store of one node.
pub struct Ipam {
    dir: PathBuf,
    lock: std::sync::Mutex<()>,
}

const LAST: &str = "last_reserved";

impl Ipam {
    pub fn open(dir: &Path) -> Result<Ipam> {
        std::fs::create_dir_all(dir).map_err(|e| NetError::io("creating", dir, e))?;
        Ok(Ipam {
            dir: dir.to_path_buf(),
            lock: std::sync::Mutex::new(()),
        })
    }

    /// Every recorded lease (unreadable records are reported as owned by nobody).
    pub fn leases(&self) -> Result<BTreeMap<Ipv4Addr, Option<Lease>>> {
        let mut out = BTreeMap::new();
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| NetError::io("listing", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| NetError::io("listing", &self.dir, e))?;
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let lease = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Lease>(&b).ok());
            out.insert(ip, lease);
        }
        Ok(out)
    }

    /// The address recorded for a sandbox.
    pub fn find(&self, sandbox_id: &str) -> Result<Option<(Ipv4Addr, Lease)>> {
        Ok(self
            .leases()?
            .into_iter()
            .find_map(|(ip, l)| l.filter(|l| l.sandbox_id == sandbox_id).map(|l| (ip, l))))
    }

    /// The sandbox's address: its existing lease (updated to `lease`), or a new address from
    /// `cidr` (network, gateway and broadcast excluded).
    pub fn acquire(&self, cidr: Ipv4Net, gateway: Ipv4Addr, lease: &Lease) -> Result<Ipv4Addr> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let leases = self.leases()?;
        if let Some((ip, _)) = leases.iter().find(|(ip, l)| {
            cidr.contains(*ip) && l.as_ref().is_some_and(|l| l.sandbox_id == lease.sandbox_id)
        }) {
            self.write_record(*ip, lease, true)?;
            return Ok(*ip);
        }
        let hosts: Vec<Ipv4Addr> = cidr.hosts().filter(|ip| *ip != gateway).collect();
        if hosts.is_empty() {
            return Err(NetError::Exhausted {
                cidr: cidr.to_string(),
            });
        }
        let last = std::fs::read_to_string(self.dir.join(LAST))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok());
        let start = last
            .and_then(|l| hosts.iter().position(|h| *h == l))
            .map(|i| i + 1)
            .unwrap_or(0);
        for k in 0..hosts.len() {
            let ip = hosts[(start + k) % hosts.len()];
            if leases.contains_key(&ip) {
                continue;
            }
            match self.write_record(ip, lease, false) {
                Ok(()) => {
                    let _ = self.write_last(ip);
                    return Ok(ip);
                }
                Err(e) if e.is_already_exists() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(NetError::Exhausted {
            cidr: cidr.to_string(),
        })
    }

    /// Releases the sandbox's address; returns it (and its lease) if there was one.
    pub fn release(&self, sandbox_id: &str) -> Result<Option<(Ipv4Addr, Lease)>> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some((ip, lease)) = self.find(sandbox_id)? else {
            return Ok(None);
        };
        self.remove(ip)?;
        Ok(Some((ip, lease)))
    }

    /// Releases every lease for which `dead` says so (unreadable records count as dead);
    /// returns what was released.
    pub fn release_where(
        &self,
        mut dead: impl FnMut(Ipv4Addr, Option<&Lease>) -> bool,
    ) -> Result<Vec<(Ipv4Addr, Option<Lease>)>> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut released = Vec::new();
        for (ip, lease) in self.leases()? {
            if lease.is_none() || dead(ip, lease.as_ref()) {
                self.remove(ip)?;
                released.push((ip, lease));
            }
        }
        Ok(released)
    }

    fn remove(&self, ip: Ipv4Addr) -> Result<()> {
        let path = self.dir.join(ip.to_string());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io("releasing address", path, e)),
        }
    }

    /// Writes the record to a temporary file, then links it to its address name
    /// (`replace`: renames over an existing record of the same owner instead).
    fn write_record(&self, ip: Ipv4Addr, lease: &Lease, replace: bool) -> Result<()> {
        let body = serde_json::to_vec(lease).map_err(|e| NetError::Internal(e.to_string()))?;
        let tmp = self
            .dir
            .join(format!(".tmp-{ip}-{:016x}", rand::random::<u64>()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(&body)
        };
        write().map_err(|e| NetError::io("writing address record", &tmp, e))?;
        let dest = self.dir.join(ip.to_string());
        let placed = if replace {
            std::fs::rename(&tmp, &dest)
        } else {
            let r = std::fs::hard_link(&tmp, &dest);
            let _ = std::fs::remove_file(&tmp);
            r
        };
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(NetError::io("reserving address", dest, e));
        }
        Ok(())
    }

    fn write_last(&self, ip: Ipv4Addr) -> Result<()> {
        let tmp = self.dir.join(".tmp-last");
        std::fs::write(&tmp, ip.to_string())
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(LAST)))
            .map_err(|e| NetError::io("writing", &tmp, e))
    }

    /// Removes temporary files left by a crash between write and link.
    pub fn clean_temporaries(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str) -> Lease {
        Lease {
            sandbox_id: id.into(),
            pod: format!("default/{id}"),
            netns: PathBuf::from("/nonexistent"),
            netns_id: None,
            host_interface: format!("bv{id}"),
        }
    }

    fn net() -> (Ipv4Net, Ipv4Addr) {
        (
            "10.42.3.0/29".parse().unwrap(),
            "10.42.3.1".parse().unwrap(),
        )
    }

    #[test]
    fn allocates_distinct_addresses_and_skips_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path()).unwrap();
        let (cidr, gw) = net();
        let mut got = Vec::new();
        for i in 0..5 {
            got.push(ipam.acquire(cidr, gw, &lease(&format!("s{i}"))).unwrap());
        }
        let want: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 42, 3, i)).collect();
        assert_eq!(got, want);
        let err = ipam.acquire(cidr, gw, &lease("s6")).unwrap_err();
        assert!(err.is_exhausted(), "{err}");
    }

    #[test]
    fn same_sandbox_gets_same_address() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path()).unwrap();
        let (cidr, gw) = net();
        let a = ipam.acquire(cidr, gw, &lease("x")).unwrap();
        let b = ipam.acquire(cidr, gw, &lease("x")).unwrap();
        assert_eq!(a, b);
        assert_eq!(ipam.leases().unwrap().len(), 1);
    }

    #[test]
    fn released_address_is_not_reused_at_once_and_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (cidr, gw) = net();
        let first = {
            let ipam = Ipam::open(dir.path()).unwrap();
            let a = ipam.acquire(cidr, gw, &lease("a")).unwrap();
            assert_eq!(ipam.release("a").unwrap().map(|x| x.0), Some(a));
            assert_eq!(ipam.release("a").unwrap(), None);
            a
        };
        let ipam = Ipam::open(dir.path()).unwrap();
        let b = ipam.acquire(cidr, gw, &lease("b")).unwrap();
        assert_ne!(first, b);
    }

    #[test]
    fn release_where_drops_dead_and_unreadable_records() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path()).unwrap();
        let (cidr, gw) = net();
        let a = ipam.acquire(cidr, gw, &lease("alive")).unwrap();
        let d = ipam.acquire(cidr, gw, &lease("dead")).unwrap();
        // A crash left an empty record behind.
        std::fs::write(dir.path().join("10.42.3.6"), b"").unwrap();
        let released = ipam
            .release_where(|_, l| l.is_some_and(|l| l.sandbox_id == "dead"))
            .unwrap();
        let ips: Vec<Ipv4Addr> = released.iter().map(|r| r.0).collect();
        assert_eq!(ips, vec![d, "10.42.3.6".parse().unwrap()]);
        assert_eq!(
            ipam.leases().unwrap().keys().copied().collect::<Vec<_>>(),
            vec![a]
        );
    }

    #[test]
    fn concurrent_acquires_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let cidr: Ipv4Net = "10.42.9.0/24".parse().unwrap();
        let gw: Ipv4Addr = "10.42.9.1".parse().unwrap();
        // Two stores on one directory: two processes, as far as the files can tell.
        let stores = [
            std::sync::Arc::new(Ipam::open(dir.path()).unwrap()),
            std::sync::Arc::new(Ipam::open(dir.path()).unwrap()),
        ];
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let ipam = stores[t % 2].clone();
                std::thread::spawn(move || {
                    (0..20)
                        .map(|i| {
                            ipam.acquire(cidr, gw, &lease(&format!("t{t}-{i}")))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Ipv4Addr> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "an address was handed out twice");
        assert_eq!(stores[0].leases().unwrap().len(), 160);
    }
}

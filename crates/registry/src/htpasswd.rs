//! `HtpasswdAuthenticator`: users from an htpasswd file (bcrypt hashes only, as
//! `htpasswd -B` writes them) and an optional access list.
//!
//! Access list file: one rule per line, `USER REPOSITORY-PATTERN ACTIONS`, e.g.
//! `alice team/* pull,push,delete` or `* public/* pull`. `USER` `*` means any authenticated
//! user; a pattern ending in `*` matches by prefix. The first matching rule wins for each
//! repository; without an access list every authenticated user may do everything.
//!
//! bcrypt is deliberately slow (~50 ms per check), so successful checks are remembered for a
//! few minutes keyed by a SHA-256 of the password.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use crate::auth::{Actions, Authenticator, Identity};
use crate::error::{RegistryError, Result};

const CACHE_TTL: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Rule {
    user: String,
    pattern: String,
    actions: Actions,
}

/// Users from an htpasswd file, permissions from an optional access list.
pub struct HtpasswdAuthenticator {
    users: HashMap<String, String>,
    rules: Option<Vec<Rule>>,
    cache: Mutex<HashMap<(String, [u8; 32]), Instant>>,
}

impl HtpasswdAuthenticator {
    /// Loads an htpasswd file and, optionally, an access-list file.
    pub fn load(htpasswd: &Path, acl: Option<&Path>) -> Result<HtpasswdAuthenticator> {
        let text = std::fs::read_to_string(htpasswd)
            .map_err(|e| RegistryError::io("read", htpasswd, e))?;
        let users = parse_htpasswd(&text, &htpasswd.display().to_string())?;
        let rules = match acl {
            None => None,
            Some(p) => {
                let t = std::fs::read_to_string(p).map_err(|e| RegistryError::io("read", p, e))?;
                Some(parse_acl(&t, &p.display().to_string())?)
            }
        };
        Ok(HtpasswdAuthenticator {
            users,
            rules,
            cache: Mutex::new(HashMap::new()),
        })
    }
}

fn parse_htpasswd(text: &str, file: &str) -> Result<HashMap<String, String>> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| RegistryError::Config {
            field: format!("htpasswd {file} line {}", i + 1),
            reason: reason.to_owned(),
        };
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| bad("expected USER:HASH"))?;
        if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
            return Err(bad("only bcrypt hashes are supported (htpasswd -B)"));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

fn parse_acl(text: &str, file: &str) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [user, pattern, actions] = parts[..] else {
            return Err(RegistryError::Config {
                field: format!("access list {file} line {}", i + 1),
                reason: "expected USER REPOSITORY-PATTERN ACTIONS".into(),
            });
        };
        let actions = Actions::parse(actions);
        rules.push(Rule {
            user: user.into(),
            pattern: pattern.into(),
            actions,
        });
    }
    Ok(rules)
}

fn matches(pattern: &str, repo: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => repo.starts_with(prefix),
        None => pattern == repo,
    }
}

#[async_trait]
impl Authenticator for HtpasswdAuthenticator {
    async fn basic(&self, username: &str, password: &str) -> Result<Option<Identity>> {
        let Some(hash) = self.users.get(username).cloned() else {
            return Ok(None);
        };
        let key = (
            username.to_owned(),
            <[u8; 32]>::from(Sha256::digest(password.as_bytes())),
        );
        {
            let cache = self.cache.lock().expect("cache lock");
            if cache.get(&key).is_some_and(|t| t.elapsed() < CACHE_TTL) {
                return Ok(Some(Identity::new(username)));
            }
        }
        let pw = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !ok {
            return Ok(None);
        }
        let mut cache = self.cache.lock().expect("cache lock");
        cache.retain(|_, t| t.elapsed() < CACHE_TTL);
        cache.insert(key, Instant::now());
        Ok(Some(Identity::new(username)))
    }

    fn permitted(&self, who: &Identity, repository: &str) -> Actions {
        match &self.rules {
            None => Actions::ALL,
            Some(rules) => rules
                .iter()
                .find(|r| (r.user == "*" || r.user == who.name) && matches(&r.pattern, repository))
                .map(|r| r.actions)
                .unwrap_or(Actions::NONE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_passwords_and_rules() {
        tokio::time::timeout(Duration::from_secs(30), async {
            let dir = tempfile::tempdir().unwrap();
            let h = dir.path().join("htpasswd");
            let hash = bcrypt::hash("secret", 4).unwrap();
            std::fs::write(&h, format!("alice:{hash}\nbob:{hash}\n")).unwrap();
            let acl = dir.path().join("acl");
            std::fs::write(&acl, "alice team/* pull,push\n* public/* pull\n").unwrap();
            let a = HtpasswdAuthenticator::load(&h, Some(&acl)).unwrap();
            assert!(a.basic("alice", "secret").await.unwrap().is_some());
            assert!(
                a.basic("alice", "secret").await.unwrap().is_some(),
                "cached"
            );
            assert!(a.basic("alice", "wrong").await.unwrap().is_none());
            assert!(a.basic("carol", "secret").await.unwrap().is_none());
            let alice = Identity::new("alice");
            let bob = Identity::new("bob");
            assert_eq!(a.permitted(&alice, "team/x"), Actions::parse("pull,push"));
            assert_eq!(a.permitted(&bob, "team/x"), Actions::NONE);
            assert_eq!(a.permitted(&bob, "public/y"), Actions::PULL);
        })
        .await
        .unwrap();
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = parse_htpasswd("alice:{SHA}abc\n", "f").unwrap_err();
        assert!(e.to_string().contains("f line 1"), "{e}");
        let e = parse_acl("alice\n", "acl").unwrap_err();
        assert!(e.to_string().contains("acl line 1"), "{e}");
    }
}

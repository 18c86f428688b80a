//! Upload sessions: kept in memory (an upload's state never has to round-trip through the
//! client, so there is no signed `_state` token to break across restarts). A session holds
//! its blob writer between requests; requests on one session are serialised by its mutex.
//! Sessions idle for longer than the TTL are cancelled by [`Uploads::expire`]. After a
//! restart, clients get `BLOB_UPLOAD_UNKNOWN` and start over; the driver's leftovers are
//! purged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::driver::BlobWriter;
use crate::error::{RegistryError, Result};

pub(crate) struct Session {
    pub repo: String,
    pub writer: Option<Box<dyn BlobWriter>>,
    pub last_used: Instant,
}

impl Session {
    pub(crate) fn offset(&self) -> u64 {
        self.writer.as_ref().map(|w| w.size()).unwrap_or(0)
    }
}

pub(crate) type SessionRef = Arc<tokio::sync::Mutex<Session>>;

pub(crate) struct Uploads {
    sessions: Mutex<HashMap<String, SessionRef>>,
    pub ttl: Duration,
}

impl Uploads {
    pub(crate) fn new(ttl: Duration) -> Uploads {
        Uploads {
            sessions: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    pub(crate) fn create(&self, repo: &str, writer: Box<dyn BlobWriter>) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let s = Session {
            repo: repo.to_owned(),
            writer: Some(writer),
            last_used: Instant::now(),
        };
        self.sessions
            .lock()
            .expect("uploads lock")
            .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(s)));
        id
    }

    /// The session `id` of repository `repo`.
    pub(crate) fn get(&self, repo: &str, id: &str) -> Result<SessionRef> {
        let s = self.sessions.lock().expect("uploads lock").get(id).cloned();
        match s {
            Some(s) => {
                // Checked without awaiting: the repo never changes after creation.
                if let Ok(g) = s.try_lock()
                    && g.repo != repo
                {
                    return Err(RegistryError::UploadUnknown { id: id.to_owned() });
                }
                Ok(s)
            }
            None => Err(RegistryError::UploadUnknown { id: id.to_owned() }),
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        self.sessions.lock().expect("uploads lock").remove(id);
    }

    /// Cancels sessions idle for longer than the TTL; returns how many.
    pub(crate) async fn expire(&self) -> usize {
        let candidates: Vec<(String, SessionRef)> = self
            .sessions
            .lock()
            .expect("uploads lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut n = 0;
        for (id, s) in candidates {
            let Ok(mut g) = s.try_lock() else { continue };
            if g.last_used.elapsed() > self.ttl {
                if let Some(w) = g.writer.take() {
                    let _ = w.cancel().await;
                }
                self.remove(&id);
                n += 1;
            }
        }
        n
    }
}

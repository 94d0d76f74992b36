//! The MD5 passwords of BGP sessions, from Secrets in FerroLB's namespace.
//!
//! Each Secret a peer names is watched on its own (a field selector on its name), so the
//! announcer never caches the namespace's other Secrets (Helm keeps release data there) and a
//! changed password reaches the session: the session restarts with it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What is known of one Secret.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    /// Not listed yet.
    Unknown,
    Missing,
    Data(BTreeMap<String, ByteString>),
}

struct Watched {
    known: Arc<Mutex<Known>>,
    task: JoinHandle<()>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Secrets {
    api: Api<Secret>,
    namespace: String,
    wake: Arc<Notify>,
    watched: BTreeMap<String, Watched>,
}

impl Secrets {
    pub fn new(client: Client, namespace: &str, wake: Arc<Notify>) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            wake,
            watched: BTreeMap::new(),
        }
    }

    /// Watches exactly the Secrets named in `refs` (name, key).
    pub fn keep_only(&mut self, refs: impl IntoIterator<Item = (String, String)>) {
        let names: BTreeSet<String> = refs.into_iter().map(|(name, _)| name).collect();
        self.watched.retain(|name, _| names.contains(name));
        for name in names {
            if !self.watched.contains_key(&name) {
                let w = self.watch(&name);
                self.watched.insert(name, w);
            }
        }
    }

    /// The password in `key` of Secret `name`, or why there is none. A Secret not listed yet
    /// is an error too: the session waits rather than starting without its password.
    pub fn password(&self, name: &str, key: &str) -> Result<String, String> {
        let known = self
            .watched
            .get(name)
            .map_or(Known::Unknown, |w| w.known.lock().unwrap_or_else(PoisonError::into_inner).clone());
        let ns = &self.namespace;
        match known {
            Known::Unknown => Err(format!("waiting to read Secret {ns}/{name} (the MD5 password)")),
            Known::Missing => Err(format!("Secret {ns}/{name} (the MD5 password) not found")),
            Known::Data(data) => match data.get(key) {
                None => Err(format!("Secret {ns}/{name} has no key {key:?} (the MD5 password)")),
                Some(bytes) => match std::str::from_utf8(&bytes.0) {
                    Ok("") => Err(format!("Secret {ns}/{name} key {key:?} is empty")),
                    Ok(p) if p.len() > 80 => Err(format!(
                        "Secret {ns}/{name} key {key:?}: longer than 80 bytes (the kernel's limit)"
                    )),
                    Ok(p) => Ok(p.to_owned()),
                    Err(_) => Err(format!("Secret {ns}/{name} key {key:?} is not UTF-8 text")),
                },
            },
        }
    }

    fn watch(&self, name: &str) -> Watched {
        let known = Arc::new(Mutex::new(Known::Unknown));
        let shared = known.clone();
        let wake = self.wake.clone();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(self.api.clone(), config).default_backoff();
        let what = name.to_owned();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut listing: Option<Known> = None;
            while let Some(event) = stream.next().await {
                let next = match event {
                    Ok(watcher::Event::Init) => {
                        listing = Some(Known::Missing);
                        continue;
                    }
                    Ok(watcher::Event::InitApply(s)) => {
                        listing = Some(Known::Data(s.data.unwrap_or_default()));
                        continue;
                    }
                    Ok(watcher::Event::InitDone) => listing.take().unwrap_or(Known::Missing),
                    Ok(watcher::Event::Apply(s)) => Known::Data(s.data.unwrap_or_default()),
                    Ok(watcher::Event::Delete(_)) => Known::Missing,
                    Err(error) => {
                        tracing::warn!(secret = %what, %error, "watching the MD5 password Secret failed; retrying");
                        continue;
                    }
                };
                let mut k = shared.lock().unwrap_or_else(PoisonError::into_inner);
                if *k != next {
                    *k = next;
                    wake.notify_one();
                }
            }
        });
        Watched { known, task }
    }
}

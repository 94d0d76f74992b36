//! What BGP mode writes to the API, from one task: this node's `BGPSessionState` objects and,
//! only while this node holds the announcers' status writer Lease (`ferrolb-announcer-status`), the
//! `ferrolb.io/InvalidSpec` conditions of the BGP objects. The loop publishes conditions only while
//! the claim holds, and the task checks the claim with its expiry again right before each condition
//! write ([`ClaimGate`]): a node whose renewal is late never writes over the new holder; what it
//! does not write is counted (`ferrolb_writes_without_claim_total{writer="bgp-conditions"}`).
//!
//! The loop publishes what should be shown ([`StatusWriter::publish`], a watch channel, so a
//! burst of changes folds into the latest); the task writes what differs from what it last
//! wrote. Writes per `BGPSessionState` are at most one a second (a flapping session shows its
//! latest state, not every step), and nothing in a status ticks by itself, so an established
//! session costs no writes (`api/src/bgp/session.rs` says why the kind exists).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_api::bgp::{BFDProfile, BGPAdvertisement, BGPPeer, BGPSessionState, BfdState, SessionState};
use ferrolb_bgp::bfd_socket::BfdStatus;
use ferrolb_bgp::fsm::State;
use ferrolb_bgp::speaker::PeerStatus;
use ferrolb_runtime::api_error::ApiFailure;
use ferrolb_runtime::writer::{ClaimGate, WRITES_WITHOUT_CLAIM};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::plan::Problems;
use crate::adapter::{FIELD_MANAGER, spec_condition};

/// Shortest time between two status writes of one `BGPSessionState`.
const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a condition patch stands before the same one is sent again (the watch has not shown
/// it yet, or the write failed).
const CONDITION_RESEND: Duration = Duration::from_secs(10);

/// What one session's `BGPSessionState` should show.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub peer_address: String,
    /// The speaker's status; `None` when the session cannot start.
    pub peer: Option<PeerStatus>,
    pub bfd: Option<BfdStatus>,
    /// Why the session cannot start or what it lacks (from the plan or the Secret).
    pub error: Option<String>,
}

/// One condition patch: kind, object name, the condition.
type ConditionPatch = (&'static str, String, serde_json::Value);

#[derive(Debug, Default, Clone)]
struct Published {
    sessions: BTreeMap<String, Desired>,
    conditions: Vec<ConditionPatch>,
}

pub struct StatusWriter {
    tx: watch::Sender<Published>,
    task: JoinHandle<()>,
}

/// The `InvalidSpec` patches that `objects` (of the kind `plural`) need, from the plan's problems.
fn spec_conditions<K: Resource>(
    out: &mut Vec<ConditionPatch>,
    plural: &'static str,
    objects: &[Arc<K>],
    problems: &BTreeMap<String, Vec<ferrolb_api::bgp::SpecProblem>>,
    conditions_of: impl Fn(&K) -> Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
) {
    for o in objects {
        let name = o.meta().name.clone().unwrap_or_default();
        let current = conditions_of(o).and_then(spec_condition::current);
        let found: Vec<String> =
            problems.get(&name).map(|ps| ps.iter().map(ToString::to_string).collect()).unwrap_or_default();
        if let Some(c) = spec_condition::invalid_spec(current, &found, o.meta().generation) {
            out.push((plural, name, c));
        }
    }
}

impl StatusWriter {
    /// Starts the task; it writes conditions only while `gate` holds.
    pub fn spawn(client: Client, node: String, nodes: Store<Node>, gate: ClaimGate) -> Self {
        let (tx, rx) = watch::channel(Published::default());
        let task = tokio::spawn(write_loop(client, node, nodes, gate, rx));
        Self { tx, task }
    }

    /// What should be shown now; `problems` only while this node holds the writer claim.
    pub fn publish(
        &self,
        sessions: BTreeMap<String, Desired>,
        problems: Option<&Problems>,
        peers: &[Arc<BGPPeer>],
        advertisements: &[Arc<BGPAdvertisement>],
        profiles: &[Arc<BFDProfile>],
    ) {
        let mut conditions = Vec::new();
        if let Some(problems) = problems {
            spec_conditions(&mut conditions, "bgppeers", peers, &problems.peers, |p| {
                p.status.as_ref().map(|s| s.conditions.as_slice())
            });
            spec_conditions(
                &mut conditions,
                "bgpadvertisements",
                advertisements,
                &problems.advertisements,
                |a| a.status.as_ref().map(|s| s.conditions.as_slice()),
            );
            spec_conditions(&mut conditions, "bfdprofiles", profiles, &problems.bfd_profiles, |b| {
                b.status.as_ref().map(|s| s.conditions.as_slice())
            });
        }
        self.tx.send_replace(Published { sessions, conditions });
    }

    /// Stops the task; the objects stay (the next start corrects them, the Node's deletion
    /// removes them).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The status as written: what decides whether to write again.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    state: SessionState,
    bfd: Option<BfdState>,
    prefixes: u32,
    error: Option<String>,
}

fn session_state(s: State) -> SessionState {
    match s {
        State::Idle => SessionState::Idle,
        State::Connect => SessionState::Connect,
        State::Active => SessionState::Active,
        State::OpenSent => SessionState::OpenSent,
        State::OpenConfirm => SessionState::OpenConfirm,
        State::Established => SessionState::Established,
    }
}

fn bfd_state(s: ferrolb_bgp::bfd::BfdState) -> BfdState {
    use ferrolb_bgp::bfd::BfdState as B;
    match s {
        B::AdminDown => BfdState::AdminDown,
        B::Down => BfdState::Down,
        B::Init => BfdState::Init,
        B::Up => BfdState::Up,
    }
}

fn shown(d: &Desired) -> Shown {
    Shown {
        state: d.peer.as_ref().map_or(SessionState::Idle, |p| session_state(p.state)),
        bfd: d.bfd.map(|b| bfd_state(b.state)),
        prefixes: d.peer.as_ref().map_or(0, |p| u32::try_from(p.routes_sent).unwrap_or(u32::MAX)),
        error: d.error.clone().or_else(|| d.peer.as_ref().and_then(|p| p.last_error.clone())),
    }
}

/// Per object: what was last written, when, and since when its state holds.
struct Written {
    shown: Option<Shown>,
    at: Option<Instant>,
    since: Timestamp,
    created: bool,
}

async fn write_loop(
    client: Client,
    node: String,
    nodes: Store<Node>,
    gate: ClaimGate,
    mut rx: watch::Receiver<Published>,
) {
    let api: Api<BGPSessionState> = Api::all(client.clone());
    let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    // This node's objects from an earlier run: kept if still wanted, deleted otherwise.
    let mut stale: BTreeSet<String> = loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                break list
                    .items
                    .into_iter()
                    .filter(|s| s.spec.node == node)
                    .filter_map(|s| s.metadata.name)
                    .collect();
            }
            Err(error) => {
                tracing::debug!(%error, "listing BGPSessionStates failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let mut written: HashMap<String, Written> = HashMap::new();
    let mut conditions_sent: HashMap<(&'static str, String), (serde_json::Value, Instant)> = HashMap::new();
    loop {
        let published = rx.borrow_and_update().clone();
        let now = Instant::now();
        let mut retry_at: Option<Instant> = None;
        let mut wanted = BTreeSet::new();
        for (peer, desired) in &published.sessions {
            let name = BGPSessionState::name_for(&node, peer);
            wanted.insert(name.clone());
            let known = stale.remove(&name);
            let w = written.entry(name.clone()).or_insert_with(|| Written {
                shown: None,
                at: None,
                since: Timestamp::now(),
                created: known,
            });
            let next = shown(desired);
            if w.shown.as_ref() == Some(&next) {
                continue;
            }
            if let Some(at) = w.at.filter(|at| now < *at + MIN_WRITE_INTERVAL) {
                let due = at + MIN_WRITE_INTERVAL;
                retry_at = Some(retry_at.map_or(due, |r| r.min(due)));
                continue;
            }
            if w.shown.as_ref().is_none_or(|s| s.state != next.state || s.bfd != next.bfd) {
                w.since = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default();
            }
            if !w.created {
                let mut object = BGPSessionState::for_session(&node, peer, &desired.peer_address);
                object.metadata.owner_references = owner(&nodes, &node).map(|o| vec![o]);
                match api
                    .create(
                        &PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
                        &object,
                    )
                    .await
                {
                    Ok(_) => w.created = true,
                    Err(e) if ApiFailure::of(&e) == ApiFailure::Conflict => w.created = true,
                    Err(error) => {
                        tracing::warn!(%peer, %error, "creating the BGPSessionState failed; retrying");
                        w.at = Some(now);
                        retry_at = Some(now + MIN_WRITE_INTERVAL);
                        continue;
                    }
                }
            }
            let status = serde_json::json!({"status": {
                "sessionState": next.state,
                "lastChangeTime": w.since.to_string(),
                "prefixesSent": next.prefixes,
                "bfdState": next.bfd,
                "lastError": next.error,
            }});
            w.at = Some(now);
            match api.patch_status(&name, &pp, &Patch::Merge(&status)).await {
                Ok(_) => w.shown = Some(next),
                Err(e) => {
                    if ApiFailure::of(&e) == ApiFailure::NotFound {
                        // Deleted under us (by a person, or the Node's garbage collection).
                        w.created = false;
                    }
                    tracing::warn!(%peer, error = %e, "writing the BGPSessionState failed; retrying");
                    retry_at = Some(now + MIN_WRITE_INTERVAL);
                }
            }
        }
        // Sessions no longer run here, and leftovers of an earlier run.
        let gone: Vec<String> = written.keys().filter(|n| !wanted.contains(*n)).cloned().collect();
        for name in gone.into_iter().chain(std::mem::take(&mut stale)) {
            written.remove(&name);
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if ApiFailure::of(&e) == ApiFailure::NotFound => {}
                Err(error) => {
                    tracing::warn!(%name, %error, "deleting a BGPSessionState failed; retrying");
                    stale.insert(name);
                    retry_at = Some(now + MIN_WRITE_INTERVAL);
                }
            }
        }
        for (kind, name, condition) in &published.conditions {
            let key = (*kind, name.clone());
            if conditions_sent
                .get(&key)
                .is_some_and(|(c, at)| same_condition(c, condition) && now < *at + CONDITION_RESEND)
            {
                continue;
            }
            if !gate.holds_at(Instant::now()) {
                metrics::counter!(WRITES_WITHOUT_CLAIM, "writer" => "bgp-conditions").increment(1);
                tracing::debug!(kind, %name, "condition not written: the writer Lease claim had lapsed");
                continue;
            }
            conditions_sent.insert(key, (condition.clone(), now));
            let patch = serde_json::json!({"status": {"conditions": [condition]}});
            let result = match *kind {
                "bgppeers" => Api::<BGPPeer>::all(client.clone())
                    .patch_status(name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(drop),
                "bgpadvertisements" => Api::<BGPAdvertisement>::all(client.clone())
                    .patch_status(name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(drop),
                _ => Api::<BFDProfile>::all(client.clone())
                    .patch_status(name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(drop),
            };
            match result {
                Ok(()) => {
                    if condition["status"] == "True" {
                        tracing::warn!(kind, %name, message = %condition["message"], "BGP object not used: invalid spec");
                    }
                }
                Err(error) => tracing::warn!(kind, %name, %error, "writing the condition failed; retrying"),
            }
        }
        let sleep = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            () = sleep => {}
        }
    }
}

/// Two condition patches say the same, whatever their transition times.
fn same_condition(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    ["status", "reason", "message", "observedGeneration"].iter().all(|k| a[k] == b[k])
}

/// An owner reference to this node's Node, so the garbage collector removes the objects of a
/// deleted node.
fn owner(nodes: &Store<Node>, node: &str) -> Option<OwnerReference> {
    let n = nodes.state().into_iter().find(|n| n.metadata.name.as_deref() == Some(node))?;
    Some(OwnerReference {
        api_version: Node::api_version(&()).into_owned(),
        kind: Node::kind(&()).into_owned(),
        name: node.to_owned(),
        uid: n.metadata.uid.clone()?,
        ..Default::default()
    })
}

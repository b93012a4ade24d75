//! The membership process: owns the chitchat instance, applies this node's
//! writes to its gossip state, and turns chitchat's view into the
//! [`Cluster`]'s — members by name, settings by last writer, node up/down
//! events for the processes that monitor nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, spawn_chitchat,
};
use owl_runtime::supervisor::{ChildSpec, Shutdown};
use owl_runtime::{ExitReason, Process, SpawnOptions};
use tokio::sync::Mutex;

use crate::gossip_thread::GossipThread;
use crate::setting::{self, Setting};
use crate::transport::{Counters, SignedUdp};
use crate::{Cluster, Member, MemberState, NODE_EVENTS, NodeEvent, View};

/// The membership process's child id in its supervisor.
pub const MEMBERSHIP: &str = "cluster_membership";

/// How often the view is rebuilt even when chitchat reports no change
/// (published figures change without changing who is live).
const REFRESH: Duration = Duration::from_millis(100);
/// Phi-accrual threshold: a node is declared down after about this many
/// mean heartbeat intervals of silence (12 × 200 ms ≈ 2.4 s). Higher than
/// chitchat's default of 8 so that a node briefly starved of CPU is not
/// declared dead; still well inside the five seconds a takeover may take.
const PHI_THRESHOLD: f64 = 12.0;
/// How long a dead node stays listed (as down) before it is forgotten.
const DEAD_NODE_GRACE: Duration = Duration::from_secs(600);
/// How long a restarted membership process tries to open the gossip port
/// while the previous one's socket closes.
const REOPEN_FOR: Duration = Duration::from_secs(2);

pub(crate) fn child_spec(cluster: Cluster) -> ChildSpec {
    ChildSpec::worker(MEMBERSHIP, move |args| {
        let cluster = cluster.clone();
        async move {
            let counters = Arc::new(Counters::default());
            let handle = open(&cluster, counters.clone())
                .await
                .map_err(ExitReason::error)?;
            let opts = SpawnOptions::new().label("cluster membership");
            Ok(args.spawn_link_opts(opts, move |p| run(p, cluster, handle, counters)))
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts chitchat as a new generation of this node, carrying what the
/// node has published and the settings it knows.
async fn open(cluster: &Cluster, counters: Arc<Counters>) -> Result<ChitchatHandle, String> {
    let config = &cluster.inner.config;
    let transport = SignedUdp {
        secret: config.secret.clone(),
        counters,
    };
    let generation = now_millis();
    let deadline = tokio::time::Instant::now() + REOPEN_FOR;
    loop {
        let mut initial: Vec<(String, String)> = cluster
            .inner
            .published
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        initial.extend(
            cluster
                .inner
                .view
                .lock()
                .settings
                .iter()
                .map(|(k, s)| (format!("{}{k}", setting::PREFIX), s.encode())),
        );
        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(config.node.clone(), generation, config.gossip_addr),
            cluster_id: config.secret.cluster_id().to_string(),
            gossip_interval: config.gossip_interval,
            listen_addr: config.gossip_addr,
            seed_nodes: config.join.iter().map(|a| a.to_string()).collect(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: PHI_THRESHOLD,
                sampling_window_size: 100,
                max_interval: Duration::from_secs(10),
                initial_interval: config.gossip_interval,
                dead_node_grace_period: DEAD_NODE_GRACE,
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
        };
        let gossip = match cluster.inner.gossip.get() {
            Some(thread) => thread,
            None => {
                let started = GossipThread::start()
                    .map_err(|e| format!("cannot start the gossip thread: {e}"))?;
                cluster.inner.gossip.get_or_init(|| started)
            }
        };
        let transport = transport.clone();
        let spawned = gossip
            .handle()
            .spawn(async move { spawn_chitchat(chitchat_config, initial, &transport).await })
            .await
            .map_err(|e| format!("the gossip thread failed: {e}"))?;
        match spawned {
            Ok(handle) => return Ok(handle),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(target: "owl::cluster", error = %format!("{e:#}"), "gossip port not free yet");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(format!("{e:#}")),
        }
    }
}

/// Stops chitchat's server task when the membership process ends, however
/// it ends, so that its successor can open the port.
struct Owned(ChitchatHandle);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run(
    mut p: Process,
    cluster: Cluster,
    handle: ChitchatHandle,
    counters: Arc<Counters>,
) -> Result<(), ExitReason> {
    let handle = Owned(handle);
    let chitchat = handle.0.chitchat();
    let mut live = chitchat.lock().await.live_nodes_watcher();
    let mut ended = std::pin::pin!(handle.0.termination_watcher());
    let mut up = BTreeSet::from([cluster.node_name().to_string()]);
    cluster.inner.joined_at.get_or_init(std::time::Instant::now);
    // Wake whoever waits on changes once the view has settled.
    let settled = cluster.clone();
    tokio::spawn(async move {
        while !settled.is_settled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        settled.inner.changes.send_modify(|v| *v += 1);
    });
    tracing::info!(target: "owl::cluster", node = cluster.node_name(),
        gossip = %cluster.config().gossip_addr, cluster = cluster.secret().cluster_id(),
        "joined the cluster's gossip");
    loop {
        refresh(&p, &cluster, &chitchat, &mut up, &counters).await;
        p.set_activity(format!("{} of the cluster's nodes up", up.len()));
        tokio::select! {
            () = cluster.inner.wake.notified() => {}
            _ = live.changed() => {}
            () = tokio::time::sleep(REFRESH) => {}
            result = &mut ended => {
                let why = match result {
                    Ok(()) => "the gossip server stopped".to_string(),
                    Err(e) => format!("the gossip server failed: {e:#}"),
                };
                return Err(ExitReason::error(why));
            }
            // Nothing is meant for this process; strays are dropped.
            _ = p.recv_any() => {}
        }
    }
}

/// Applies pending writes, adopts newer settings, rebuilds the view and
/// tells the node-event subscribers what changed.
async fn refresh(
    p: &Process,
    cluster: &Cluster,
    chitchat: &Mutex<Chitchat>,
    up: &mut BTreeSet<String>,
    counters: &Counters,
) {
    let pending = std::mem::take(&mut *cluster.inner.pending.lock());
    let me = cluster.node_name();
    let mut cc = chitchat.lock().await;
    let own = cc.self_node_state();
    for (key, value) in pending.published {
        own.set(key, value);
    }
    for (key, s) in &pending.settings {
        own.set(format!("{}{key}", setting::PREFIX), s.encode());
    }
    let live: BTreeSet<ChitchatId> = cc.live_nodes().cloned().collect();
    let own_id = cc.self_chitchat_id().clone();
    // A live node of our name elsewhere that started before us: the name
    // is its (a restart of ours at the same address is no rival).
    let name_taken_by = live
        .iter()
        .filter(|id| {
            *id.node_id == *me
                && id.gossip_advertise_addr != own_id.gossip_advertise_addr
                && id.generation_id < own_id.generation_id
        })
        .min_by_key(|id| id.generation_id)
        .map(|id| Member {
            name: id.node_id.to_string(),
            state: MemberState::Up,
            is_self: false,
            gossip_addr: id.gossip_advertise_addr,
            generation: id.generation_id,
            values: BTreeMap::new(),
        });
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    let mut settings: BTreeMap<String, Setting> = BTreeMap::new();
    for (id, state) in cc.node_states() {
        let is_live = live.contains(id);
        let mut values = BTreeMap::new();
        for (key, value) in state.key_values() {
            match key.strip_prefix(setting::PREFIX) {
                Some(name) => {
                    if let Some(s) = Setting::decode(value)
                        && settings.get(name).is_none_or(|known| s.newer_than(known))
                    {
                        settings.insert(name.to_string(), s);
                    }
                }
                None => {
                    values.insert(key.to_string(), value.to_string());
                }
            }
        }
        let member = Member {
            name: id.node_id.to_string(),
            state: if is_live {
                MemberState::Up
            } else {
                MemberState::Down
            },
            is_self: &*id.node_id == me,
            gossip_addr: id.gossip_advertise_addr,
            generation: id.generation_id,
            values,
        };
        // One entry per name: a restarted node shows its newest live
        // generation, not the dead one it replaced.
        let keep = match members.get(&member.name) {
            None => true,
            Some(known) => {
                (member.state == MemberState::Up, member.generation)
                    > (known.state == MemberState::Up, known.generation)
            }
        };
        if keep {
            members.insert(member.name.clone(), member);
        }
    }
    // Keep our own copy of every setting current, so that it outlives the
    // node that wrote it.
    let own = cc.self_node_state();
    for (name, s) in &settings {
        let key = format!("{}{name}", setting::PREFIX);
        let ours = own.get(&key).and_then(Setting::decode);
        if ours.is_none_or(|o| s.newer_than(&o)) {
            own.set(key, s.encode());
        }
    }
    drop(cc);

    // This node is up by definition, even between generations.
    if let Some(m) = members.get_mut(me) {
        m.state = MemberState::Up;
        m.is_self = true;
    }
    let now_up: BTreeSet<String> = members
        .values()
        .filter(|m| m.state == MemberState::Up)
        .map(|m| m.name.clone())
        .collect();
    let changed = {
        let mut view = cluster.inner.view.lock();
        // A write made here since `pending` was taken is not in chitchat
        // yet: keep the newer of the two.
        for (name, s) in &view.settings {
            if settings.get(name).is_none_or(|g| s.newer_than(g)) {
                settings.insert(name.clone(), s.clone());
            }
        }
        let changed = view.settings != settings || *up != now_up;
        let changed = changed || view.name_taken_by != name_taken_by;
        if name_taken_by.is_some() && view.name_taken_by.is_none() {
            tracing::error!(target: "owl::cluster", node = me,
                other = %name_taken_by.as_ref().map(|m| m.gossip_addr.to_string()).unwrap_or_default(),
                "another node is up under this node's name, and was first: this node takes no share; give it another --node name");
        }
        *view = View {
            members: members.into_values().collect(),
            settings,
            rejected: counters.rejected.load(Ordering::Relaxed),
            name_taken_by,
        };
        changed
    };
    for name in now_up.difference(up) {
        tracing::info!(target: "owl::cluster", node = %name, "node up");
        p.node().broadcast(NODE_EVENTS, NodeEvent::Up(name.clone()));
    }
    for name in up.difference(&now_up) {
        tracing::warn!(target: "owl::cluster", node = %name, "node down");
        p.node()
            .broadcast(NODE_EVENTS, NodeEvent::Down(name.clone()));
    }
    *up = now_up;
    if changed {
        cluster.inner.changes.send_modify(|v| *v += 1);
    }
}

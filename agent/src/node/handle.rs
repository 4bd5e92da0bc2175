//! [`NodeHandle`]: what the layers above ask of the running node, and the
//! one channel their questions travel on.
//!
//! The node loop owns the DHT core, the connection cache and the keys, so
//! nobody else touches them: the local API, the devices layer and the
//! daemon send a [`Query`] and await the answer. Every method waits as
//! long as the node takes; callers that must answer in bounded time (the
//! API, the watchdog) put their own timeout around it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::NodeError;
use crate::api::{LookupAnswer, Peer, Status};
use crate::identity::{Keypair, PublicKey};
use crate::metrics::Family;

/// A question for the node loop, answered on the enclosed channel.
#[derive(Debug)]
pub(crate) enum Query {
    /// Status summary.
    Status(oneshot::Sender<Status>),
    /// The routing table's contacts.
    Peers(oneshot::Sender<Vec<Peer>>),
    /// Look a key up in the DHT; `Ok(None)` when no record exists.
    Lookup(
        PublicKey,
        oneshot::Sender<Result<Option<LookupAnswer>, NodeError>>,
    ),
    /// The node's metric families.
    Metrics(oneshot::Sender<Vec<Family>>),
    /// The devices this gateway hosts now (replaces the previous set).
    Host(Vec<Arc<Keypair>>, oneshot::Sender<()>),
    /// A peer is no longer admitted: close its connections and drop it
    /// from the routing table; answers whether it was known.
    Forget(PublicKey, oneshot::Sender<bool>),
    /// A peer heard of outside the DHT, at these addresses: join through
    /// it; answers whether a lookup through it started.
    Introduce(
        PublicKey,
        Vec<SocketAddr>,
        super::Source,
        oneshot::Sender<bool>,
    ),
}

/// Questions the node loop buffers before askers wait.
const QUEUE: usize = 64;

/// The asking side of the node loop; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct NodeHandle {
    tx: mpsc::Sender<Query>,
}

impl NodeHandle {
    /// A handle and the receiving end the node loop drains
    /// ([`super::Node::run`]).
    pub(crate) fn channel() -> (Self, mpsc::Receiver<Query>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, rx)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| NodeError::ShuttingDown)?;
        rx.await.map_err(|_| NodeError::ShuttingDown)
    }

    /// Status summary (`devices` is left at 0: the node hosts identities,
    /// the devices layer counts devices).
    pub(crate) async fn status(&self) -> Result<Status, NodeError> {
        self.ask(Query::Status).await
    }

    /// The routing table's contacts.
    pub(crate) async fn peers(&self) -> Result<Vec<Peer>, NodeError> {
        self.ask(Query::Peers).await
    }

    /// The record published under `key`: `Ok(None)` when there is none,
    /// an error when one was found but failed a check.
    pub(crate) async fn lookup(&self, key: PublicKey) -> Result<Option<LookupAnswer>, NodeError> {
        self.ask(|tx| Query::Lookup(key, tx)).await?
    }

    /// The node's metric families.
    pub(crate) async fn metrics(&self) -> Result<Vec<Family>, NodeError> {
        self.ask(Query::Metrics).await
    }

    /// Hosts exactly `devices` from now on: TLS identities and device
    /// records for new ones, none for removed ones.
    pub(crate) async fn host(&self, devices: Vec<Arc<Keypair>>) -> Result<(), NodeError> {
        self.ask(|tx| Query::Host(devices, tx)).await
    }

    /// Closes `key`'s connections and drops it from the routing table
    /// (it is no longer admitted); whether it was known.
    pub(crate) async fn forget(&self, key: PublicKey) -> Result<bool, NodeError> {
        self.ask(|tx| Query::Forget(key, tx)).await
    }

    /// A peer heard of outside the DHT (a DNS seed, a LAN announcement):
    /// the node remembers the source and joins through it unless already
    /// connected to it. Whether a lookup through it started.
    pub(crate) async fn introduce(
        &self,
        key: PublicKey,
        addrs: Vec<SocketAddr>,
        source: super::Source,
    ) -> Result<bool, NodeError> {
        self.ask(|tx| Query::Introduce(key, addrs, source, tx))
            .await
    }
}

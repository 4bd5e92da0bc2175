//! A deterministic network simulator for the DHT core.
//!
//! - [`Net`] (`net.rs`): N cores, one virtual clock, per-link latency,
//!   loss, churn; `step()` delivers the earliest message or timer.
//! - [`SimRng`] (`rng.rs`): the seeded RNG behind every choice.
//! - `records.rs`: Ed25519-signed records and a verifier that caches by hash.
//! - [`scenario`]: the figures table, shared by tests and the `dht_sim`
//!   bench.
//! - `flood.rs`: STORE floods against one node's quotas.
//! - [`hostile`]: lying nodes against plain and disjoint-path lookups, and
//!   STOREs for keys a node is not responsible for.
//!
//! Same seed and parameters, same bytes out: nothing here reads a clock,
//! and no hash map is iterated.
//!
//! What this module does not do: ship in the daemon. It is built for the
//! core's tests and, with the `sim` feature, for the `dht_sim` bench.

mod flood;
pub mod hostile;
mod net;
mod records;
mod rng;
pub mod scenario;

#[cfg(test)]
pub(crate) use records::{sign_record, SimVerifier};
#[cfg(test)]
pub(crate) use rng::SimRng;

//! The networks tests run in: hosts in namespaces, NAT routers, a lossy
//! link on loopback, and a hostile peer loose in them.
//!
//! - [`netns`]: test hosts in network namespaces on a bridge, with
//!   iptables loss and partitions (root only; skips otherwise).
//! - [`natlab`]: hosts behind endpoint-independent or symmetric NAT routers
//!   on a public bridge, all in namespaces (root only; skips otherwise).
//! - [`lossy_proxy`]: a userspace UDP proxy adding delay, jitter and loss
//!   on loopback (no `netem` on this kernel).
//! - [`hostile`]: a hostile peer made of the agent's library parts
//!   (replays, forgeries, STORE floods, handshake floods).
//! - [`container`]: a Debian 12 machine booted with systemd as PID 1
//!   (systemd-nspawn; root only, skips otherwise).
//!
//! Not here: the agents placed in a lab (see [`crate::harness`]). A lab
//! never touches the machine's own interfaces or firewall: everything it
//! builds lives in namespaces or sockets of its own and goes with it.

pub mod container;
pub mod hostile;
pub mod lossy_proxy;
pub mod natlab;
pub mod netns;

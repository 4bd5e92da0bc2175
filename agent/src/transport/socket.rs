//! The UDP socket under the QUIC endpoint, which also carries relayed
//! paths.
//!
//! QUIC packets always have the fixed bit (0x40) set, since this endpoint
//! neither greases it nor accepts greasing, so a datagram whose first byte
//! has both high bits clear is ours (docs/wire.md, "NAT traversal"):
//!
//! ```text
//! 0x00 | sid (u64, big-endian) | QUIC packet    a relayed datagram of session sid
//! 0x01 | 8 random bytes                         a hole-punching probe (dropped on arrival)
//! ```
//!
//! A relayed session appears to quinn as a peer at a *virtual* address in
//! 240.0.0.0/4 (reserved, never routed): sending to it wraps the packet in
//! a relay frame to the relay; a frame arriving from the relay is
//! unwrapped and handed to quinn as if it came from the virtual address.
//! So one end-to-end QUIC connection (its TLS proving the far peer's key)
//! runs over the relay without the relay holding any key, and the QUIC
//! endpoint needs no change. On a relay, frames of sessions it forwards
//! are passed on right here, in the endpoint's receive path (see
//! [`super::relay`]).
//!
//! The socket is a plain tokio UDP socket, one datagram per system call:
//! kernel receive offload would merge QUIC packets and relay frames from
//! the same sender into one buffer, which cannot be split here without
//! `unsafe` socket options.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::ReadBuf;

use super::relay::Forwarder;
use crate::clock::Clock;

/// First byte of a relayed datagram.
pub(crate) const FRAME_RELAY: u8 = 0x00;
/// First byte of a hole-punching probe.
pub(crate) const FRAME_PUNCH: u8 = 0x01;
/// Bytes a relay frame adds in front of a QUIC packet.
pub(crate) const RELAY_HEADER: usize = 9;
/// Relayed sessions this node keeps as an end at once; the least recently
/// used goes first.
const MAX_SESSIONS: usize = 1024;
/// Addresses remembered as contacted (see [`Paths::contacted_within`]).
const MAX_CONTACTED: usize = 4096;
/// Non-QUIC datagrams handled in one receive call before yielding, so a
/// flood of relay traffic cannot starve the endpoint's own work.
const MAX_FRAMES_PER_POLL: usize = 64;

/// How a connection reaches its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Straight over UDP.
    Direct,
    /// Through the relay at this address.
    Relayed {
        /// The relay's UDP address.
        relay: SocketAddr,
    },
}

/// Counters of the socket (monotonic).
#[derive(Debug, Default)]
pub struct SocketCounters {
    /// Hole-punching probes received.
    pub punches_received: AtomicU64,
    /// Relayed datagrams received for a session of ours.
    pub relayed_in: AtomicU64,
    /// Relayed datagrams sent on a session of ours.
    pub relayed_out: AtomicU64,
    /// Datagrams dropped: malformed frames, frames of no known session,
    /// or real datagrams claiming a virtual source address.
    pub dropped: AtomicU64,
}

struct SessionEnd {
    virt: SocketAddr,
    last_seen: Instant,
}

#[derive(Default)]
struct Sessions {
    by_sid: HashMap<(SocketAddr, u64), SessionEnd>,
    by_virt: HashMap<SocketAddr, (SocketAddr, u64)>,
    next: u32,
}

/// What the endpoint's socket shares with the rest of the node: relayed
/// sessions this node is an end of, the relay table if it relays, and a
/// way to send raw probes.
pub struct Paths {
    io: Arc<tokio::net::UdpSocket>,
    v6: bool,
    sessions: Mutex<Sessions>,
    forwarder: Option<Forwarder>,
    counters: SocketCounters,
    /// Addresses this node dialed, accepted or probed, and when.
    contacted: Mutex<HashMap<SocketAddr, Instant>>,
    clock: Clock,
}

impl fmt::Debug for Paths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paths")
            .field("relay", &self.forwarder.is_some())
            .finish()
    }
}

/// Whether `addr` is a virtual address of a relayed session (IPv4 or
/// IPv4-mapped IPv6 in 240.0.0.0/4).
pub(crate) fn is_virtual(addr: &SocketAddr) -> bool {
    let v4 = match addr.ip() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return false,
        },
    };
    v4.octets()[0] & 0xF0 == 0xF0
}

impl Paths {
    /// The shared state of a socket bound to `io`; `forwarder` when this
    /// node relays for others.
    fn new(
        io: Arc<tokio::net::UdpSocket>,
        forwarder: Option<Forwarder>,
        clock: Clock,
    ) -> io::Result<Self> {
        let v6 = io.local_addr()?.is_ipv6();
        Ok(Self {
            clock,
            io,
            v6,
            sessions: Mutex::new(Sessions::default()),
            forwarder,
            counters: SocketCounters::default(),
            contacted: Mutex::new(HashMap::new()),
        })
    }

    /// Remembers that this node sent to `addr` (a dial, an accepted
    /// connection, a probe): its NAT, if any, now lets `addr` in for a
    /// while, so a dial-back from there proves nothing.
    pub fn note_contact(&self, addr: SocketAddr) {
        if is_virtual(&addr) {
            return;
        }
        let addr = self.canonical(addr);
        if let Ok(mut c) = self.contacted.lock() {
            if c.len() >= MAX_CONTACTED && !c.contains_key(&addr) {
                let oldest = c.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a);
                if let Some(a) = oldest {
                    c.remove(&a);
                }
            }
            c.insert(addr, self.clock.instant());
        }
    }

    /// Whether this node sent to `addr` within `window`.
    pub fn contacted_within(&self, addr: SocketAddr, window: Duration) -> bool {
        let addr = self.canonical(addr);
        self.contacted
            .lock()
            .ok()
            .and_then(|c| c.get(&addr).copied())
            .is_some_and(|t| self.clock.instant().saturating_duration_since(t) < window)
    }

    /// Registers session `sid` through the relay at `relay` and returns the
    /// virtual address quinn sees the far end at. Registering the same
    /// session twice returns the same address.
    pub fn add_session(&self, relay: SocketAddr, sid: u64) -> SocketAddr {
        let relay = self.canonical(relay);
        let Ok(mut s) = self.sessions.lock() else {
            return relay;
        };
        if let Some(e) = s.by_sid.get_mut(&(relay, sid)) {
            e.last_seen = self.clock.instant();
            return e.virt;
        }
        if s.by_sid.len() >= MAX_SESSIONS {
            let oldest = s
                .by_sid
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, e)| (*k, e.virt));
            if let Some((k, virt)) = oldest {
                s.by_sid.remove(&k);
                s.by_virt.remove(&virt);
            }
        }
        let virt = loop {
            s.next = s.next.wrapping_add(1) & 0x0FFF_FFFF;
            let ip = Ipv4Addr::from(0xF000_0000 | s.next);
            let v = self.canonical(SocketAddr::new(IpAddr::V4(ip), 1));
            if !s.by_virt.contains_key(&v) {
                break v;
            }
        };
        s.by_sid.insert(
            (relay, sid),
            SessionEnd {
                virt,
                last_seen: self.clock.instant(),
            },
        );
        s.by_virt.insert(virt, (relay, sid));
        virt
    }

    /// Forgets the session behind virtual address `virt`.
    pub fn remove_session(&self, virt: &SocketAddr) {
        if let Ok(mut s) = self.sessions.lock() {
            if let Some(key) = s.by_virt.remove(virt) {
                s.by_sid.remove(&key);
            }
        }
    }

    /// The path to a peer quinn sees at `addr`.
    pub fn path_of(&self, addr: &SocketAddr) -> Path {
        if !is_virtual(addr) {
            return Path::Direct;
        }
        let relay = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.by_virt.get(addr).map(|(r, _)| *r));
        match relay {
            Some(relay) => Path::Relayed { relay },
            // A session already forgotten: still not a direct path.
            None => Path::Relayed {
                relay: SocketAddr::from(([0, 0, 0, 0], 0)),
            },
        }
    }

    /// Sends `count` hole-punching probes to `to`, `spacing` apart: each
    /// opens (or keeps open) our NAT's mapping towards `to`, so that its
    /// QUIC packets to us get through.
    pub async fn punch(&self, to: SocketAddr, count: u32, spacing: Duration) {
        let to = self.canonical(to);
        self.note_contact(to);
        for i in 0..count {
            let mut probe = [FRAME_PUNCH; 9];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut probe[1..]);
            // A failed probe is a lost probe: the dial decides.
            let _ = self.io.send_to(&probe, to).await;
            if i + 1 < count {
                tokio::time::sleep(spacing).await;
            }
        }
    }

    /// The relay table, on a node that relays.
    pub fn forwarder(&self) -> Option<&Forwarder> {
        self.forwarder.as_ref()
    }

    /// The socket's counters.
    pub fn counters(&self) -> &SocketCounters {
        &self.counters
    }

    /// Relayed sessions this node is an end of.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().map(|s| s.by_sid.len()).unwrap_or(0)
    }

    /// `addr` in the socket's address family (quinn hands IPv4 peers of an
    /// IPv6 socket as mapped addresses; the tables must agree).
    fn canonical(&self, addr: SocketAddr) -> SocketAddr {
        match (self.v6, addr) {
            (true, SocketAddr::V4(a)) => SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port()),
            (false, SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), a.port()),
                None => addr,
            },
            _ => addr,
        }
    }

    /// The session a frame from `relay` belongs to, as its virtual address.
    fn arrived(&self, relay: SocketAddr, sid: u64) -> Option<SocketAddr> {
        let mut s = self.sessions.lock().ok()?;
        let e = s.by_sid.get_mut(&(relay, sid))?;
        e.last_seen = self.clock.instant();
        Some(e.virt)
    }
}

/// The endpoint's socket (see the module doc).
pub(crate) struct PathSocket {
    paths: Arc<Paths>,
}

impl fmt::Debug for PathSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathSocket").finish_non_exhaustive()
    }
}

impl PathSocket {
    /// Wraps a bound socket; `forwarder` when this node relays.
    pub(crate) fn new(
        socket: std::net::UdpSocket,
        forwarder: Option<Forwarder>,
        clock: Clock,
    ) -> io::Result<(Self, Arc<Paths>)> {
        socket.set_nonblocking(true)?;
        let io = Arc::new(tokio::net::UdpSocket::from_std(socket)?);
        let paths = Arc::new(Paths::new(io, forwarder, clock)?);
        Ok((
            Self {
                paths: paths.clone(),
            },
            paths,
        ))
    }

    /// Handles one datagram that is not a QUIC packet for us: forwards it
    /// (relay), or counts and drops it. Returns the virtual source address
    /// when it is a relayed packet of one of our sessions, left unwrapped
    /// at the start of `buf`, with its new length.
    fn frame(&self, src: SocketAddr, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let p = &self.paths;
        match buf.first() {
            Some(&FRAME_RELAY) if buf.len() > RELAY_HEADER => {
                let mut sid = [0u8; 8];
                sid.copy_from_slice(&buf[1..RELAY_HEADER]);
                let sid = u64::from_be_bytes(sid);
                if let Some(virt) = p.arrived(src, sid) {
                    p.counters.relayed_in.fetch_add(1, Ordering::Relaxed);
                    buf.copy_within(RELAY_HEADER.., 0);
                    return Some((virt, buf.len() - RELAY_HEADER));
                }
                match p
                    .forwarder
                    .as_ref()
                    .and_then(|f| f.route(src, sid, buf.len(), self.paths.clock.instant()))
                {
                    // A full send buffer drops the datagram, as a router would.
                    Some(to) => {
                        let _ = p.io.try_send_to(buf, to);
                    }
                    None if p.forwarder.is_none() => {
                        p.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {}
                }
                None
            }
            Some(&FRAME_PUNCH) => {
                p.counters.punches_received.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                p.counters.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Waits until the socket can send again (quinn retries then).
#[derive(Debug)]
struct Writable(Arc<tokio::net::UdpSocket>);

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        self.0.poll_send_ready(cx)
    }
}

impl AsyncUdpSocket for PathSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable(self.paths.io.clone()))
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let p = &self.paths;
        if !is_virtual(&transmit.destination) {
            return p
                .io
                .try_send_to(transmit.contents, transmit.destination)
                .map(|_| ());
        }
        let route = p
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.by_virt.get(&transmit.destination).copied());
        let Some((relay, sid)) = route else {
            // The session is gone: the packet is lost, as on a dead path.
            return Ok(());
        };
        let mut frame = Vec::with_capacity(RELAY_HEADER + transmit.contents.len());
        frame.push(FRAME_RELAY);
        frame.extend_from_slice(&sid.to_be_bytes());
        frame.extend_from_slice(transmit.contents);
        p.io.try_send_to(&frame, relay)?;
        p.counters.relayed_out.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        for _ in 0..MAX_FRAMES_PER_POLL {
            let mut rb = ReadBuf::new(buf);
            let src = match self.paths.io.poll_recv_from(cx, &mut rb) {
                Poll::Ready(Ok(src)) => src,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let len = rb.filled().len();
            let data = &mut buf[..len];
            let quic = data.first().is_some_and(|b| b & 0xC0 != 0);
            let (addr, len) = if quic {
                if is_virtual(&src) {
                    // Only the relay path may speak for a virtual address.
                    self.paths.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                (src, len)
            } else {
                match self.frame(src, data) {
                    Some(unwrapped) => unwrapped,
                    None => continue,
                }
            };
            *m = RecvMeta {
                addr,
                len,
                stride: len,
                ecn: None,
                dst_ip: None,
            };
            return Poll::Ready(Ok(1));
        }
        // More frames are waiting: come back after other work.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.paths.io.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_addresses_are_class_e_only() {
        assert!(is_virtual(&"240.0.0.1:1".parse().expect("addr")));
        assert!(is_virtual(&"[::ffff:255.1.2.3]:9".parse().expect("addr")));
        assert!(!is_virtual(&"10.0.0.1:1".parse().expect("addr")));
        assert!(!is_virtual(&"[2001:db8::1]:1".parse().expect("addr")));
    }

    #[tokio::test]
    async fn sessions_map_both_ways_and_are_forgotten() {
        let std = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (_socket, paths) = PathSocket::new(std, None, Clock::system()).expect("socket");
        let relay: SocketAddr = "192.0.2.1:4433".parse().expect("addr");
        let v = paths.add_session(relay, 42);
        assert!(is_virtual(&v));
        assert_eq!(
            paths.add_session(relay, 42),
            v,
            "same session, same address"
        );
        let w = paths.add_session(relay, 43);
        assert_ne!(v, w);
        assert_eq!(paths.path_of(&v), Path::Relayed { relay });
        assert_eq!(paths.arrived(relay, 42), Some(v));
        assert_eq!(
            paths.arrived("192.0.2.2:4433".parse().expect("addr"), 42),
            None
        );
        paths.remove_session(&v);
        assert_eq!(paths.arrived(relay, 42), None);
        assert_eq!(paths.sessions(), 1);
        assert_eq!(
            paths.path_of(&"127.0.0.1:5".parse().expect("addr")),
            Path::Direct
        );
    }
}

//! A NAT test bed in Linux network namespaces: a "public internet" (a
//! bridge with public hosts on it) and home routers that masquerade one
//! private host each, so NAT traversal can be tested with real kernels'
//! NAT instead of a model of one.
//!
//! Like [`crate::labs::netns`], everything lives in namespaces of its own (the
//! bridge too, and every veth is created directly between two lab
//! namespaces), so nothing touches the machine's own interfaces or
//! firewall. Needs root, `ip`, `iptables` and `sysctl`; [`NatLab::new`]
//! returns `None` with a printed "SKIPPED: ..." reason otherwise. Hosts
//! are [`Host`]s as in `netns` (`high` is always false: no halves here).
//!
//! Addressing (n = the process id modulo 200, plus 20, as in `netns`):
//!
//! | what                  | namespace       | address                      |
//! |-----------------------|-----------------|------------------------------|
//! | public host i         | `<prefix>p<i>`  | 10.78.n.(1+i)/24 on `eth0`   |
//! | NAT router j, WAN     | `<prefix>r<j>`  | 10.78.n.(101+j)/24 on `wan`  |
//! | NAT router j, LAN     | `<prefix>r<j>`  | 10.(100+j).n.1/24 on `lan`   |
//! | host behind router j  | `<prefix>n<j>`  | 10.(100+j).n.2/24 on `eth0`  |
//!
//! The public segment is 10.78.n.0/24, apart from `netns`'s 10.77.n.0/24,
//! so a reader of a packet capture or a failure message can tell the
//! two labs apart (the namespaces would keep them apart anyway).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::labs::netns::{in_ns, run, unavailable, Host, Lab};

/// How a router maps and filters: the two behaviours NAT traversal has
/// to tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// Plain `MASQUERADE`: Linux keeps the internal source port whenever
    /// it is free, so one internal socket is seen at the same external
    /// address and port by every destination (endpoint-independent
    /// mapping). Inbound filtering is by conntrack, i.e. only the exact
    /// address and port the host sent to may answer (a "port-restricted
    /// cone", the common home router). UDP hole punching works through it.
    EndpointIndependent,
    /// `MASQUERADE --random-fully`: every new destination gets a fresh
    /// random external port (address- and port-dependent mapping), so the
    /// port a rendezvous server observes is useless to anyone else and
    /// hole punching fails.
    Symmetric,
}

/// One router and the private host behind it.
struct Nat {
    kind: NatKind,
    /// The router's namespace.
    router_ns: String,
    /// The router's address on the public segment: what public hosts see
    /// as the source of everything the host behind it sends.
    wan_ip: String,
    /// The host behind the router (its `ip` is the private address).
    host: Host,
}

/// A built test bed; dropping it deletes every namespace it made.
pub struct NatLab {
    subnet: u8,
    public: Vec<Host>,
    nats: Vec<Nat>,
    /// Every namespace created so far, in order, so that a build failing
    /// halfway (a panic in [`NatLab::new`]) still cleans up on drop.
    namespaces: Vec<String>,
}

/// Labs built by this process so far: part of the namespace names, so a
/// lab whose namespaces were somehow not deleted cannot collide with the
/// next one built by the same test binary.
static BUILT: AtomicU32 = AtomicU32::new(0);

/// `sysctl` is needed on top of what [`unavailable`] checks (for
/// `ip_forward` inside the routers).
fn natlab_unavailable() -> Option<String> {
    if let Some(why) = unavailable() {
        return Some(why);
    }
    if std::process::Command::new("sysctl")
        .arg("-V")
        .output()
        .is_err()
    {
        return Some("`sysctl` (procps) not installed".into());
    }
    None
}

impl NatLab {
    /// `public` hosts on the public bridge and one router per entry of
    /// `nats`, each with one host behind it. `None` (reason printed) when
    /// the machine cannot host namespaces; panics if setup fails halfway
    /// on a machine that should support it (a broken lab must not pass
    /// for a skipped one).
    pub fn new(public: usize, nats: &[NatKind]) -> Option<NatLab> {
        if let Some(why) = natlab_unavailable() {
            eprintln!("SKIPPED: NAT namespace lab unavailable: {why}");
            return None;
        }
        // Public hosts take .1-.100 and routers .101-.200 of the public
        // /24; routers' private /24s are 10.100-10.199.
        assert!(
            public <= 100 && nats.len() <= 100,
            "at most 100 public hosts and 100 NATs"
        );
        let id = std::process::id() % 100_000;
        let built = BUILT.fetch_add(1, Ordering::Relaxed);
        let mut lab = NatLab {
            subnet: (id % 200) as u8 + 20,
            public: Vec::new(),
            nats: Vec::new(),
            namespaces: Vec::new(),
        };
        if let Err(e) = lab.build(&format!("nl{id}x{built}"), public, nats) {
            // `lab` is dropped while unwinding: what was built is deleted.
            panic!("building the NAT namespace lab failed: {e}");
        }
        Some(lab)
    }

    /// Creates namespace `ns` and records it for [`Drop`].
    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        run(&["ip", "netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        // Loopback up: programs in the lab may bind or talk to 127.0.0.1.
        in_ns(ns, &["ip", "link", "set", "lo", "up"])
    }

    /// A veth pair from `a_ns`/`a` to `b_ns`/`b`, created directly
    /// between the two namespaces (never in the machine's own), both ends
    /// up.
    fn veth(a_ns: &str, a: &str, b_ns: &str, b: &str) -> Result<(), String> {
        run(&[
            "ip", "-n", a_ns, "link", "add", a, "type", "veth", "peer", "name", b, "netns", b_ns,
        ])?;
        in_ns(a_ns, &["ip", "link", "set", a, "up"])?;
        in_ns(b_ns, &["ip", "link", "set", b, "up"])
    }

    fn build(&mut self, prefix: &str, public: usize, nats: &[NatKind]) -> Result<(), String> {
        let n = self.subnet;
        let br = format!("{prefix}br");
        self.add_ns(&br)?;
        in_ns(&br, &["ip", "link", "add", "br0", "type", "bridge"])?;
        in_ns(&br, &["ip", "link", "set", "br0", "up"])?;

        for i in 0..public {
            let ns = format!("{prefix}p{i}");
            let ip = format!("10.78.{n}.{}", 1 + i);
            self.add_ns(&ns)?;
            let port = format!("p{i}");
            Self::veth(&ns, "eth0", &br, &port)?;
            in_ns(&br, &["ip", "link", "set", &port, "master", "br0"])?;
            in_ns(
                &ns,
                &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            )?;
            self.public.push(Host {
                ns,
                ip,
                high: false,
            });
        }

        for (j, &kind) in nats.iter().enumerate() {
            let router = format!("{prefix}r{j}");
            let inside = format!("{prefix}n{j}");
            let wan_ip = format!("10.78.{n}.{}", 101 + j);
            let lan_net = format!("10.{}.{n}", 100 + j);
            let (lan_ip, host_ip) = (format!("{lan_net}.1"), format!("{lan_net}.2"));
            self.add_ns(&router)?;
            self.add_ns(&inside)?;

            let port = format!("r{j}");
            Self::veth(&router, "wan", &br, &port)?;
            in_ns(&br, &["ip", "link", "set", &port, "master", "br0"])?;
            in_ns(
                &router,
                &["ip", "addr", "add", &format!("{wan_ip}/24"), "dev", "wan"],
            )?;

            Self::veth(&router, "lan", &inside, "eth0")?;
            in_ns(
                &router,
                &["ip", "addr", "add", &format!("{lan_ip}/24"), "dev", "lan"],
            )?;
            in_ns(
                &inside,
                &["ip", "addr", "add", &format!("{host_ip}/24"), "dev", "eth0"],
            )?;
            in_ns(&inside, &["ip", "route", "add", "default", "via", &lan_ip])?;

            Self::router_rules(&router, kind)?;
            self.nats.push(Nat {
                kind,
                router_ns: router,
                wan_ip,
                host: Host {
                    ns: inside,
                    ip: host_ip,
                    high: false,
                },
            });
        }
        Ok(())
    }

    /// Forwarding, the masquerade of `kind`, and a home router's stateful
    /// firewall, in the router's namespace.
    fn router_rules(router: &str, kind: NatKind) -> Result<(), String> {
        in_ns(router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        let mut masquerade = vec![
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "wan",
            "-j",
            "MASQUERADE",
        ];
        if kind == NatKind::Symmetric {
            masquerade.push("--random-fully");
        }
        in_ns(router, &masquerade)?;
        let filter: [&[&str]; 4] = [
            // Out: anything from the private host.
            &["-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT"],
            // In: only answers to what went out (conntrack matches the
            // exact remote address and port the host sent to).
            &[
                "-A",
                "FORWARD",
                "-i",
                "wan",
                "-o",
                "lan",
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ],
            &["-A", "FORWARD", "-i", "wan", "-j", "DROP"],
            // An unsolicited datagram to the WAN address matches no
            // mapping, so it is addressed to the router itself. Accepted
            // (even just to be answered with "port unreachable"), it would
            // leave a confirmed conntrack entry remote -> wan:port, and a
            // later datagram from the host to that remote on the same port
            // would find the external port taken and be masqueraded to a
            // different one: the first packet of a hole punch arriving
            // early would break the punch. Dropped here, the entry is
            // never confirmed and vanishes with the packet, as on a real
            // home router.
            &[
                "-A",
                "INPUT",
                "-i",
                "wan",
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-j",
                "DROP",
            ],
        ];
        for rule in filter {
            let mut args = vec!["iptables"];
            args.extend_from_slice(rule);
            in_ns(router, &args)?;
        }
        Ok(())
    }

    /// Public host `i` (its address is reachable from every router's WAN
    /// side: the rendezvous servers and far peers of a test).
    pub fn public(&self, i: usize) -> &Host {
        &self.public[i]
    }

    /// The host behind NAT `j`; its `ip` is the private address, which no
    /// public host can reach.
    pub fn behind(&self, j: usize) -> &Host {
        &self.nats[j].host
    }

    /// NAT `j`'s public address: what public hosts see as the source of
    /// the datagrams of [`behind`](Self::behind)`(j)`.
    pub fn router_wan_ip(&self, j: usize) -> &str {
        &self.nats[j].wan_ip
    }

    /// NAT `j`'s kind.
    pub fn kind(&self, j: usize) -> NatKind {
        self.nats[j].kind
    }

    /// NAT `j`'s router namespace (to read its conntrack table or
    /// iptables counters when a test fails).
    pub fn router_ns(&self, j: usize) -> &str {
        &self.nats[j].router_ns
    }

    /// The command prefix that runs a program inside `host` (the same as
    /// [`Lab::exec_prefix`]: both labs' hosts are plain namespaces).
    pub fn exec_prefix(host: &Host) -> Vec<String> {
        Lab::exec_prefix(host)
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, and with them the
        // pairs; processes still inside were killed by their owners.
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

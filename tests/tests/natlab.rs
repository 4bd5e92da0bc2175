//! The NAT lab (`streembit_tests::labs::natlab`) behaves as its NAT kinds claim,
//! checked with real UDP sockets inside its namespaces: masquerading to the
//! router's address, endpoint-independent versus symmetric port mapping,
//! a stateful firewall, and UDP hole punching that works through two
//! endpoint-independent NATs and fails through a symmetric one.
//! Needs root, iproute2 and iptables; prints SKIPPED and passes otherwise.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use streembit_tests::labs::natlab::{NatKind, NatLab};
use streembit_tests::labs::netns::Host;
use streembit_tests::peers::python;

use NatKind::{EndpointIndependent as Eim, Symmetric};

/// Each test builds a lab: one at a time (the labs would not collide, but
/// two cores are better spent on one).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The port every private socket binds (so port preservation is visible).
const INTERNAL: u16 = 4000;
/// The port public hosts listen on.
const SERVER: u16 = 5000;
/// How long a datagram that should arrive may take: generous, it only
/// fails a test that would otherwise be wrong, it never paces one.
const ARRIVES: Duration = Duration::from_secs(5);
/// How long we listen to be sure a datagram that must not arrive did not
/// (a negative check has to wait; on a bridge of veths a delivered
/// datagram takes well under a millisecond).
const NEVER: Duration = Duration::from_secs(2);

/// A datagram as a peer saw it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    ip: String,
    port: u16,
    text: String,
}

/// One UDP socket in a lab host: `tests/py/udp_peer.py`, driven over
/// stdin; it answers every command within the timeout the command names,
/// so no read here can hang.
struct Peer {
    name: String,
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Peer {
    fn start(host: &Host, port: u16) -> Peer {
        let name = format!("udp peer {}:{port} in {}", host.ip, host.ns);
        let prefix = NatLab::exec_prefix(host);
        let mut child = Command::new(&prefix[0])
            .args(&prefix[1..])
            .arg("python3")
            .arg(python::script("udp_peer.py"))
            .args([host.ip.as_str(), &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut peer = Peer {
            name,
            child,
            stdin,
            out,
        };
        let ready = peer.line();
        assert!(ready.starts_with("ready "), "{}: {ready:?}", peer.name);
        peer
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        match self.out.read_line(&mut l) {
            Ok(n) if n > 0 => l.trim_end().to_owned(),
            other => panic!("{} exited or failed: {other:?}", self.name),
        }
    }

    fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("{}: writing {cmd:?}: {e}", self.name));
        self.line()
    }

    fn send(&mut self, ip: &str, port: u16, text: &str) {
        let answer = self.command(&format!("send {ip} {port} {text}"));
        assert_eq!(answer, "sent", "{}: send to {ip}:{port}", self.name);
    }

    /// The next datagram, or `None` after `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<Seen> {
        let answer = self.command(&format!("recv {}", timeout.as_secs_f64()));
        if answer == "timeout" {
            return None;
        }
        let parts: Vec<&str> = answer.split(' ').collect();
        match parts.as_slice() {
            ["got", ip, port, text] => Some(Seen {
                ip: ip.to_string(),
                port: port.parse().expect("port"),
                text: text.to_string(),
            }),
            _ => panic!("{}: unexpected answer {answer:?}", self.name),
        }
    }

    /// The next datagram, which must arrive.
    fn expect(&mut self, what: &str) -> Seen {
        let name = self.name.clone();
        self.recv(ARRIVES)
            .unwrap_or_else(|| panic!("{name} did not receive {what} in {ARRIVES:?}"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `iptables -L -v` and the nat table of router `j`, for failure messages.
fn router_state(lab: &NatLab, j: usize) -> String {
    let mut state = String::new();
    for table in ["filter", "nat"] {
        let out = Command::new("ip")
            .args(["netns", "exec", lab.router_ns(j), "iptables", "-t", table])
            .args(["-L", "-v", "-n"])
            .output();
        match out {
            Ok(o) => state.push_str(&String::from_utf8_lossy(&o.stdout)),
            Err(e) => state.push_str(&format!("iptables: {e}\n")),
        }
    }
    state
}

#[test]
fn public_hosts_see_the_routers_wan_address_as_the_source() {
    let _serial = serial();
    let Some(lab) = NatLab::new(1, &[Eim, Symmetric]) else {
        return;
    };
    let mut server = Peer::start(lab.public(0), SERVER);
    for j in 0..2 {
        let mut inside = Peer::start(lab.behind(j), INTERNAL);
        inside.send(&lab.public(0).ip, SERVER, &format!("hello{j}"));
        let seen = server.expect("hello");
        eprintln!(
            "NAT {j} ({:?}): {}:{INTERNAL} seen as {}:{}",
            lab.kind(j),
            lab.behind(j).ip,
            seen.ip,
            seen.port
        );
        assert_eq!(seen.text, format!("hello{j}"));
        assert_eq!(seen.ip, lab.router_wan_ip(j), "NAT {j} source address");
    }
}

/// The external ports at which one internal socket behind NAT `j` is seen
/// by four destinations: two public hosts, two ports each.
fn external_ports(lab: &NatLab, j: usize) -> Vec<u16> {
    let mut inside = Peer::start(lab.behind(j), INTERNAL);
    let mut ports = Vec::new();
    for i in 0..2 {
        for port in [SERVER, SERVER + 1] {
            let mut server = Peer::start(lab.public(i), port);
            inside.send(&lab.public(i).ip, port, "probe");
            let seen = server.expect("probe");
            assert_eq!(seen.ip, lab.router_wan_ip(j));
            ports.push(seen.port);
        }
    }
    ports
}

#[test]
fn endpoint_independent_keeps_one_port_and_symmetric_picks_one_per_destination() {
    let _serial = serial();
    let Some(lab) = NatLab::new(2, &[Eim, Symmetric]) else {
        return;
    };
    let eim = external_ports(&lab, 0);
    let sym = external_ports(&lab, 1);
    eprintln!(
        "internal port {INTERNAL}: endpoint-independent seen at {eim:?}, symmetric at {sym:?}"
    );
    assert_eq!(
        eim,
        vec![INTERNAL; 4],
        "endpoint-independent NAT: same port, the internal one, everywhere"
    );
    // With --random-fully four equal random ports have odds of 1 in 2^48.
    assert!(
        sym.iter().any(|p| *p != sym[0]),
        "symmetric NAT gave one port to every destination: {sym:?}"
    );
}

#[test]
fn only_the_address_a_host_sent_to_gets_through_its_nat() {
    let _serial = serial();
    let Some(lab) = NatLab::new(2, &[Eim, Symmetric]) else {
        return;
    };
    let mut server = Peer::start(lab.public(0), SERVER);
    let mut stranger = Peer::start(lab.public(1), SERVER);
    let mut inside: Vec<Peer> = (0..2)
        .map(|j| Peer::start(lab.behind(j), INTERNAL))
        .collect();
    for (j, peer) in inside.iter_mut().enumerate() {
        peer.send(&lab.public(0).ip, SERVER, "out");
        let mapped = server.expect("out");
        assert_eq!(mapped.ip, lab.router_wan_ip(j));
        eprintln!(
            "NAT {j} ({:?}) mapped {}:{INTERNAL} to {}:{}",
            lab.kind(j),
            lab.behind(j).ip,
            mapped.ip,
            mapped.port
        );
        // Unsolicited: another public host, to the mapped address. Sent
        // before the reply, so were it delivered it would be read first
        // or at least within the NEVER window after the reply.
        stranger.send(&mapped.ip, mapped.port, "unsolicited");
        server.send(&mapped.ip, mapped.port, "reply");
    }
    // Both hosts listen at once: the negative windows overlap.
    let got: Vec<(Seen, Option<Seen>)> = std::thread::scope(|s| {
        let listening: Vec<_> = inside
            .iter_mut()
            .map(|peer| s.spawn(move || (peer.expect("the reply"), peer.recv(NEVER))))
            .collect();
        listening
            .into_iter()
            .map(|h| h.join().expect("receiving thread"))
            .collect()
    });
    for (j, (first, more)) in got.into_iter().enumerate() {
        eprintln!(
            "NAT {j} ({:?}): inside got {first:?}, then {more:?}",
            lab.kind(j)
        );
        assert_eq!(
            first,
            Seen {
                ip: lab.public(0).ip.clone(),
                port: SERVER,
                text: "reply".into()
            },
            "NAT {j}: {}",
            router_state(&lab, j)
        );
        assert_eq!(more, None, "NAT {j} let an unsolicited datagram in");
    }
}

/// Hosts behind NATs `a` and `b` register with public host 0 from
/// [`INTERNAL`], then punch: A to B's observed address, B to A's, A
/// again. Returns what B and A received within [`NEVER`] after that.
fn hole_punch(lab: &NatLab, a: usize, b: usize) -> (Option<Seen>, Option<Seen>) {
    let mut rendezvous = Peer::start(lab.public(0), SERVER);
    let mut pa = Peer::start(lab.behind(a), INTERNAL);
    let mut pb = Peer::start(lab.behind(b), INTERNAL);
    pa.send(&lab.public(0).ip, SERVER, "register-a");
    let a_ext = rendezvous.expect("A's registration");
    pb.send(&lab.public(0).ip, SERVER, "register-b");
    let b_ext = rendezvous.expect("B's registration");
    eprintln!(
        "A behind NAT {a} ({:?}) observed at {}:{}, B behind NAT {b} ({:?}) at {}:{}",
        lab.kind(a),
        a_ext.ip,
        a_ext.port,
        lab.kind(b),
        b_ext.ip,
        b_ext.port
    );
    // A's first datagram is dropped by B's router but opens A's NAT
    // towards B's observed address; B's then gets in through that hole
    // and opens B's; A's second gets in through B's.
    pa.send(&b_ext.ip, b_ext.port, "a1");
    pb.send(&a_ext.ip, a_ext.port, "b1");
    pa.send(&b_ext.ip, b_ext.port, "a2");
    // Both listen at once: the negative case waits NEVER only once.
    std::thread::scope(|s| {
        let at_b = s.spawn(|| pb.recv(NEVER));
        let at_a = s.spawn(|| pa.recv(NEVER));
        (
            at_b.join().expect("B's receive"),
            at_a.join().expect("A's receive"),
        )
    })
}

#[test]
fn udp_hole_punching_works_through_two_endpoint_independent_nats() {
    let _serial = serial();
    let Some(lab) = NatLab::new(1, &[Eim, Eim]) else {
        return;
    };
    let (at_b, at_a) = hole_punch(&lab, 0, 1);
    eprintln!("B received {at_b:?}; A received {at_a:?}");
    let from = |j: usize, text: &str| Seen {
        ip: lab.router_wan_ip(j).to_owned(),
        port: INTERNAL,
        text: text.into(),
    };
    // B's first datagram is A's second: the first was dropped at B's NAT.
    assert_eq!(at_b, Some(from(0, "a2")), "{}", router_state(&lab, 1));
    assert_eq!(at_a, Some(from(1, "b1")), "{}", router_state(&lab, 0));
}

#[test]
fn udp_hole_punching_fails_through_a_symmetric_nat() {
    let _serial = serial();
    let Some(lab) = NatLab::new(1, &[Eim, Symmetric]) else {
        return;
    };
    let (at_b, at_a) = hole_punch(&lab, 0, 1);
    eprintln!("B (symmetric) received {at_b:?}; A received {at_a:?}");
    // A aims at the port the rendezvous saw, which B's NAT gave to that
    // flow only; B's datagram to A leaves from yet another port, which
    // A's NAT does not recognise.
    assert_eq!(
        at_b, None,
        "B received A's datagram through its symmetric NAT"
    );
    assert_eq!(
        at_a, None,
        "A received B's datagram from an unexpected port"
    );
}

//! Test hosts in Linux network namespaces: one namespace per host, each
//! with a veth into a bridge that lives in a namespace of its own, so
//! nothing touches the machine's own interfaces or firewall.
//!
//! Faults are applied inside the hosts with iptables (this kernel has no
//! `netem` qdisc): random loss with `-m statistic --mode random`, and
//! partitions with DROP rules between address ranges. Needs root, `ip`
//! (iproute2) and `iptables`; [`Lab::new`] returns `None` with a printed
//! reason otherwise, and the tests skip.

use std::process::Command;

/// Hosts of one lab: `10.77.<lab>.<n>/24`; host i of the "low" half gets
/// .(i+1), of the "high" half .(129+j), so each half is one /25.
pub struct Lab {
    prefix: String,
    subnet: u8,
    hosts: Vec<Host>,
}

/// One test host.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub ip: String,
    /// Which half of the lab (for partitions): false = low, true = high.
    pub high: bool,
}

/// Runs a command to completion; its stderr is the error (shared with
/// [`crate::labs::natlab`]).
pub(crate) fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command inside namespace `ns`.
pub(crate) fn in_ns(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all)
}

/// Why this machine cannot build a lab, if it cannot.
pub fn unavailable() -> Option<String> {
    // The effective uid, from the "Uid:" line of /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    if euid.as_deref() != Some("0") {
        return Some("not running as root (network namespaces need it)".into());
    }
    for tool in ["ip", "iptables"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!(
                "`{tool}` not installed (scripts/install-test-deps.sh installs it)"
            ));
        }
    }
    None
}

impl Lab {
    /// `low` + `high` hosts on one bridge; `None` (reason printed) when
    /// the machine cannot host namespaces. Panics if setup fails halfway
    /// on a machine that should support it.
    pub fn new(low: usize, high: usize) -> Option<Lab> {
        if let Some(why) = unavailable() {
            eprintln!("SKIPPED: network-namespace lab unavailable: {why}");
            return None;
        }
        assert!(low <= 120 && high <= 120, "at most 120 hosts per half");
        let id = std::process::id() % 100_000;
        let subnet = (id % 200) as u8 + 20;
        let mut lab = Lab {
            prefix: format!("sb{id}"),
            subnet,
            hosts: Vec::new(),
        };
        if let Err(e) = lab.build(low, high) {
            panic!("building the namespace lab failed: {e}");
        }
        Some(lab)
    }

    fn bridge_ns(&self) -> String {
        format!("{}br", self.prefix)
    }

    fn build(&mut self, low: usize, high: usize) -> Result<(), String> {
        let br = self.bridge_ns();
        run(&["ip", "netns", "add", &br])?;
        in_ns(&br, &["ip", "link", "add", "br0", "type", "bridge"])?;
        in_ns(&br, &["ip", "link", "set", "br0", "up"])?;
        let slots = (0..low)
            .map(|i| (i + 1, false))
            .chain((0..high).map(|j| (129 + j, true)));
        for (n, (octet, is_high)) in slots.enumerate() {
            let ns = format!("{}h{n:03}", self.prefix);
            let ip = format!("10.77.{}.{octet}", self.subnet);
            let (a, b) = (format!("{ns}a"), format!("{ns}b"));
            run(&["ip", "netns", "add", &ns])?;
            self.hosts.push(Host {
                ns: ns.clone(),
                ip: ip.clone(),
                high: is_high,
            });
            run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
            run(&["ip", "link", "set", &a, "netns", &ns])?;
            run(&["ip", "link", "set", &b, "netns", &br])?;
            in_ns(&br, &["ip", "link", "set", &b, "master", "br0"])?;
            in_ns(&br, &["ip", "link", "set", &b, "up"])?;
            in_ns(&ns, &["ip", "link", "set", "lo", "up"])?;
            in_ns(&ns, &["ip", "link", "set", &a, "name", "eth0"])?;
            in_ns(
                &ns,
                &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            )?;
            in_ns(&ns, &["ip", "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// The hosts, low half first.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Every host drops `probability` of the UDP datagrams it receives
    /// (each datagram crosses one link, so that is the loss per link).
    pub fn set_loss(&self, probability: f64) -> Result<(), String> {
        let p = format!("{probability}");
        for h in &self.hosts {
            in_ns(
                &h.ns,
                &[
                    "iptables",
                    "-A",
                    "INPUT",
                    "-p",
                    "udp",
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    fn half(&self, high: bool) -> String {
        format!("10.77.{}.{}/25", self.subnet, if high { 128 } else { 0 })
    }

    /// Cuts the low half from the high half (`on`), or heals the cut.
    pub fn partition(&self, on: bool) -> Result<(), String> {
        let op = if on { "-I" } else { "-D" };
        for h in &self.hosts {
            let other = self.half(!h.high);
            in_ns(
                &h.ns,
                &["iptables", op, "INPUT", "-s", &other, "-j", "DROP"],
            )?;
        }
        Ok(())
    }

    /// The command prefix that runs a program inside `host`.
    pub fn exec_prefix(host: &Host) -> Vec<String> {
        ["ip", "netns", "exec", &host.ns]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth, and with it
        // the pair; processes still inside were killed by their owners.
        for h in &self.hosts {
            let _ = run(&["ip", "netns", "del", &h.ns]);
        }
        let _ = run(&["ip", "netns", "del", &self.bridge_ns()]);
    }
}

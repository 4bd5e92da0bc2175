//! Who may log in to the managed broker and what each account may do: the
//! mosquitto `password_file` and `acl_file`, made from the bridge files.
//!
//! Accounts, and why they are split this way:
//! - the agent's own (`streembit-agent`, a random password kept in memory
//!   only): the one account that may publish on `<prefix>/#`, where the
//!   signed readings go;
//! - a bridge's (`username`/`password` of its `[mqtt]` table, what the
//!   agent's bridge connects with): reads its devices' topics, publishes
//!   on their command topics;
//! - a device's (`username`/`password` of a `[[mqtt.devices]]` entry,
//!   what the device itself connects with): publishes only on its own
//!   point and availability topics, reads only its own command topics.
//!
//! Per-device accounts rather than one account per bridge: a device that
//! knew its bridge's password could publish commands and its siblings'
//! readings, and the gateway would sign them with the siblings' keys.
//! Every account may also read `<prefix>/#`: signed readings are meant
//! for anyone (they verify without trusting us). Anonymous clients, when
//! the operator allows them, may read and never publish.
//!
//! What this module does not do: run mosquitto (`mosquitto.rs`) or decide
//! where files go.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use rand_core::{OsRng, RngCore};
use streembit_bridges::config::MqttBus;
use streembit_bridges::Bus;

use crate::devices::LoadedBridge;

/// The agent's own account on the managed broker.
pub(crate) const AGENT_USER: &str = "streembit-agent";

/// PBKDF2 rounds of a stored password. mosquitto_passwd uses 101; more
/// costs the broker a few ms per login on a Pi and a thief of the 0600
/// file ten times more per guess.
const ROUNDS: u32 = 1000;

/// What an account is for: decides its rights, and two roles never share
/// one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Agent,
    Bridge,
    Device,
}

#[derive(Debug)]
struct Account {
    role: Role,
    password: String,
    /// Where it was declared (`file: key`), for error messages.
    origin: String,
    read: Vec<String>,
    write: Vec<String>,
}

/// The two files mosquitto reads, as text, and what is worth a warning.
#[derive(Debug)]
pub(crate) struct BrokerFiles {
    /// `password_file`: `user:$7$rounds$salt$hash` lines.
    pub passwd: String,
    /// `acl_file`.
    pub acl: String,
    /// Accounts missing from bridge files that use this broker.
    pub warnings: Vec<String>,
}

/// What the broker files are made from besides the bridge files.
#[derive(Debug, Clone)]
pub(crate) struct BrokerPolicy {
    /// Where the broker listens: a bridge file whose `[mqtt]` host:port
    /// is this address is one of ours.
    pub listen: SocketAddr,
    /// `<prefix>/#` is the agent's alone.
    pub topic_prefix: String,
    /// The agent's own password.
    pub agent_password: String,
    /// Anonymous clients may connect (and only read).
    pub allow_anonymous: bool,
    /// Home Assistant's discovery prefix, when the agent announces points
    /// there: the agent's account also writes `<it>/#`.
    pub discovery_prefix: Option<String>,
}

/// A fresh random password (256 bits, hex).
pub(crate) fn random_password() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Whether the bridge connects to the broker listening on `listen`. With a
/// wildcard listen address any host on that port counts: the gateway's
/// own LAN address is one of them.
pub(crate) fn uses_broker(bus: &MqttBus, listen: SocketAddr) -> bool {
    if bus.port != listen.port() {
        return false;
    }
    let host = bus.host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    listen.ip().is_unspecified()
        || (listen.ip().is_loopback() && loopback)
        || host == listen.ip().to_string()
}

/// Builds both files from every bridge file in use. Errors name file and
/// key: a username for two roles, or with two passwords, or reserved.
pub(crate) fn broker_files<'a>(
    bridges: impl IntoIterator<Item = &'a LoadedBridge>,
    policy: &BrokerPolicy,
) -> Result<BrokerFiles, Vec<String>> {
    let mut accounts: BTreeMap<String, Account> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let outputs = format!("{}/#", policy.topic_prefix);
    let mut add = |name: &str, password: Option<&str>, account: Account| {
        let Some(password) = password else {
            problems.push(format!(
                "{}: key `username` needs a `password` for the agent's broker",
                account.origin
            ));
            return;
        };
        if name == AGENT_USER && account.role != Role::Agent {
            problems.push(format!(
                "{}: username `{AGENT_USER}` is the agent's own, choose another",
                account.origin
            ));
            return;
        }
        match accounts.get_mut(name) {
            None => {
                accounts.insert(
                    name.to_owned(),
                    Account {
                        password: password.to_owned(),
                        ..account
                    },
                );
            }
            Some(a) if a.role != account.role => problems.push(format!(
                "{}: username `{name}` is also {}: a bridge and a device never share an account",
                account.origin, a.origin
            )),
            Some(a) if a.password != password => problems.push(format!(
                "{}: username `{name}` has another password in {}",
                account.origin, a.origin
            )),
            Some(a) => {
                a.read.extend(account.read);
                a.write.extend(account.write);
            }
        }
    };
    add(
        AGENT_USER,
        Some(&policy.agent_password),
        Account {
            role: Role::Agent,
            password: String::new(),
            origin: "the agent".to_owned(),
            read: Vec::new(),
            write: [outputs.clone()]
                .into_iter()
                .chain(policy.discovery_prefix.iter().map(|p| format!("{p}/#")))
                .collect(),
        },
    );
    for b in bridges {
        let Bus::Mqtt(bus) = &b.bus else { continue };
        if !uses_broker(bus, policy.listen) {
            continue;
        }
        let mut inputs = Vec::new();
        let mut commands = Vec::new();
        for (i, d) in bus.devices.iter().enumerate() {
            let mut own_inputs: Vec<String> = d.points.iter().map(|p| p.topic.clone()).collect();
            own_inputs.extend(d.availability.iter().map(|a| a.topic.clone()));
            let own_commands: Vec<String> = d
                .points
                .iter()
                .filter_map(|p| p.command.as_ref().map(|c| c.topic.clone()))
                .collect();
            let origin = format!("{}: key `mqtt.devices[{i}]`", b.name);
            match &d.username {
                Some(user) => add(
                    user,
                    d.password.as_deref(),
                    Account {
                        role: Role::Device,
                        password: String::new(),
                        origin,
                        read: own_commands.iter().cloned().chain([outputs.clone()]).collect(),
                        write: own_inputs.clone(),
                    },
                ),
                None => warnings.push(format!(
                    "{origin}: device `{}` has no username: the agent's broker refuses its client (add username and password)",
                    d.name
                )),
            }
            inputs.extend(own_inputs);
            commands.extend(own_commands);
        }
        let origin = format!("{}: key `mqtt`", b.name);
        match &bus.username {
            Some(user) => add(
                user,
                bus.password.as_deref(),
                Account {
                    role: Role::Bridge,
                    password: String::new(),
                    origin,
                    read: inputs.into_iter().chain([outputs.clone()]).collect(),
                    write: commands,
                },
            ),
            None => warnings.push(format!(
                "{origin}: no username: the agent's broker refuses this bridge (add username and password)"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut passwd = String::new();
    let mut acl = String::from("# Written by the Streembit agent at every start and reload.\n");
    if policy.allow_anonymous {
        // Lines before the first `user` are the anonymous clients'.
        acl.push_str("# Anonymous clients ([mqtt] allow_anonymous): read only.\ntopic read #\n");
    }
    for (name, a) in &accounts {
        let _ = writeln!(passwd, "{name}:{}", hash_password(&a.password));
        let _ = writeln!(acl, "\n# {}\nuser {name}", a.origin);
        let mut read = a.read.clone();
        read.sort();
        read.dedup();
        let mut write = a.write.clone();
        write.sort();
        write.dedup();
        for t in &read {
            let _ = writeln!(acl, "topic read {t}");
        }
        for t in &write {
            let _ = writeln!(acl, "topic write {t}");
        }
    }
    Ok(BrokerFiles {
        passwd,
        acl,
        warnings,
    })
}

/// `password` in mosquitto 2's hashed form, with a fresh salt.
fn hash_password(password: &str) -> String {
    crate::daemon::password::hash(password, ROUNDS)
}

#[cfg(test)]
mod tests;

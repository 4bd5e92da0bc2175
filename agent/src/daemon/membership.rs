//! A private network as the daemon sets it up from its config: the
//! allowlist, the admin keys, this agent's own credential, the kept
//! revocation list; and what happens to a key when it leaves (its
//! connections, relayed sessions, records, subscriptions and queues go).
//!
//! What this module does not do: decide admission (the transport's
//! membership does) or pass revocation lists on (the node does).

use std::path::Path;
use std::time::Duration;

use super::config::{AgentConfig, ConfigError};
use super::DaemonError;
use crate::api::{CredentialView, MembersView};
use crate::devices::Devices;
use crate::identity::PublicKey;
use crate::metrics::{Family, Kind as MetricKind};
use crate::node::NodeHandle;
use crate::transport::{read_allowlist, Authority, Membership};
use crate::wire::membership::{Credential, Role};
use crate::wire::{NetworkId, UnixMillis};

/// A credential's end is warned about this long before.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

impl AgentConfig {
    /// Whether this is a private network (an allowlist or admin keys).
    pub fn is_private(&self) -> bool {
        !self.allowlist.is_empty() || self.allowlist_file.is_some() || !self.admins.is_empty()
    }

    /// The checks of the membership keys that read nothing but the text.
    pub(super) fn membership_errors(&self, origin: &str) -> Vec<String> {
        let mut errors = Vec::new();
        let mut err =
            |key: &str, reason: String| errors.push(format!("{origin}: key `{key}`: {reason}"));
        for (name, keys) in [("allowlist", &self.allowlist), ("admins", &self.admins)] {
            for (i, k) in keys.iter().enumerate() {
                if let Err(e) = k.parse::<PublicKey>() {
                    err(&format!("{name}[{i}]"), e.to_string());
                }
            }
        }
        if !self.admins.is_empty()
            && (self.admin_threshold == 0 || self.admin_threshold > self.admins.len())
        {
            err(
                "admin_threshold",
                format!(
                    "{} must be between 1 and the number of admins ({})",
                    self.admin_threshold,
                    self.admins.len()
                ),
            );
        }
        if self.credential_file.is_some() && self.admins.is_empty() {
            err(
                "credential_file",
                "a credential needs the network's `admins` to be checked against".into(),
            );
        }
        if self.is_private() && self.network == "public" {
            err(
                "network",
                "an allowlist or admin keys make the network private: give it its own name \
                 (not \"public\")"
                    .into(),
            );
        }
        if !self.is_private() && self.network != "public" {
            err(
                "allowlist",
                format!(
                    "network {:?} is private but has no allowlist, allowlist_file or admins",
                    self.network
                ),
            );
        }
        errors
    }

    /// The checks that open the allowlist and credential files.
    pub(super) fn membership_file_errors(&self, origin: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(f) = &self.allowlist_file {
            if let Err(reasons) = read_allowlist(f) {
                for reason in reasons {
                    errors.push(format!("{origin}: key `allowlist_file`: {reason}"));
                }
            }
        }
        if let Some(f) = &self.credential_file {
            if let Err(e) = read_credential(f) {
                errors.push(format!("{origin}: key `credential_file`: {e}"));
            }
        }
        errors
    }

    /// The full allowlist: inline keys plus the file's (validated at load;
    /// the file is re-read here, so a reload sees its new content).
    pub fn allowlist(&self) -> Result<Vec<PublicKey>, ConfigError> {
        let mut keys: Vec<PublicKey> = self
            .allowlist
            .iter()
            .filter_map(|k| k.parse().ok())
            .collect();
        if let Some(f) = &self.allowlist_file {
            keys.extend(read_allowlist(f).map_err(ConfigError)?);
        }
        Ok(keys)
    }

    /// The admin keys and threshold (validated at load), if any.
    pub fn authority(&self) -> Option<Authority> {
        let admins: Vec<PublicKey> = self.admins.iter().filter_map(|k| k.parse().ok()).collect();
        Authority::new(admins, self.admin_threshold).ok()
    }
}

/// This agent's own credential.
#[derive(Debug, Clone)]
pub(crate) struct OwnCredential {
    /// As presented in handshakes.
    pub bytes: Vec<u8>,
    /// What it says.
    pub credential: Credential,
}

fn read_credential(path: &Path) -> Result<(Vec<u8>, Credential, Vec<PublicKey>), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let (credential, signers) =
        Credential::open(&bytes).map_err(|e| format!("{shown}: not a valid credential ({e})"))?;
    Ok((bytes, credential, signers))
}

/// The membership of `config`'s network, with the revocation list kept in
/// the state directory, and this agent's own credential checked: it must
/// be for this key, this network and signed by enough admins (else every
/// peer would refuse us; better to say so now, with the fix).
pub(super) fn build(
    config: &AgentConfig,
    network: &NetworkId,
    me: &PublicKey,
    state_dir: &Path,
) -> Result<(Membership, Option<OwnCredential>), DaemonError> {
    if !config.is_private() {
        return Ok((Membership::public(), None));
    }
    let authority = config.authority();
    let allowlist = config.allowlist().map_err(DaemonError::config)?;
    let membership = Membership::private(network, allowlist, authority.clone())
        .keep_revocations_in(state_dir.join("revocations.cose"))
        .map_err(DaemonError::config)?;
    let own = match (&config.credential_file, &authority) {
        (Some(path), Some(authority)) => {
            let (bytes, credential, signers) =
                read_credential(path).map_err(DaemonError::config)?;
            let shown = path.display();
            if credential.subject != *me {
                return Err(DaemonError::config(format!(
                    "credential_file {shown} is for key {}, but this agent is {me}: \
                     issue one for this key (`streembit member issue {me} ...`)",
                    credential.subject
                )));
            }
            if credential.network != network.as_str() {
                return Err(DaemonError::config(format!(
                    "credential_file {shown} is for network {:?}, this agent is on {network}",
                    credential.network
                )));
            }
            if !authority.signed_by_enough(&signers) {
                return Err(DaemonError::config(format!(
                    "credential_file {shown} is not signed by {} of this network's admins",
                    authority.threshold()
                )));
            }
            Some(OwnCredential { bytes, credential })
        }
        _ => None,
    };
    Ok((membership, own))
}

/// What this node knows of its network's membership.
pub(crate) fn members_view(
    membership: &Membership,
    network: &NetworkId,
    own: Option<&OwnCredential>,
    now: UnixMillis,
) -> MembersView {
    let authority = membership.authority();
    let revocations = membership.revocations();
    let mut revoked: Vec<String> = revocations.revoked.iter().map(|k| k.to_string()).collect();
    revoked.sort();
    MembersView {
        network: network.to_string(),
        private: membership.is_private(),
        admins: authority
            .as_ref()
            .map(|a| a.admins().iter().map(|k| k.to_string()).collect())
            .unwrap_or_default(),
        admin_threshold: authority.as_ref().map_or(0, |a| a.threshold()),
        revocation_seq: revocations.seq,
        revoked,
        admitted_by_credential: membership.admitted_by_credential(),
        credential: own.map(|o| CredentialView {
            role: o.credential.role.as_str().to_owned(),
            serial: o.credential.serial,
            issued_unix_ms: o.credential.issued.0,
            expires_unix_ms: o.credential.expires.map(|e| e.0),
        }),
        warnings: own
            .and_then(|o| expiry_warning(&o.credential, now))
            .into_iter()
            .collect(),
    }
}

/// A warning from 30 days before the credential ends (judged by the
/// network's time): peers refuse an expired credential, so the operator
/// must issue a new one before.
pub(crate) fn expiry_warning(credential: &Credential, now: UnixMillis) -> Option<String> {
    let end = credential.expires?;
    let warn_ms = EXPIRY_WARNING.as_millis() as u64;
    if end.0 > now.0.saturating_add(warn_ms) {
        return None;
    }
    let date = crate::clock::format_date(end);
    Some(if end <= now {
        format!("this agent's credential expired on {date}: peers refuse it; issue a new one (`streembit member issue`)")
    } else {
        let days = (end.0 - now.0) / 86_400_000;
        format!("this agent's credential expires on {date} (in {days} days): issue a new one (`streembit member issue`) and reload")
    })
}

/// The membership as metric families: what is held, and this agent's
/// own credential's remaining time (absent when it does not expire).
pub(crate) fn families(
    own: Option<&OwnCredential>,
    membership: &Membership,
    now: UnixMillis,
) -> Vec<Family> {
    let mut out = vec![
        Family::single(
            "streembit_members_by_credential",
            "Keys admitted by credential that this node remembers (for the checks after a handshake).",
            MetricKind::Gauge,
            membership.admitted_by_credential() as u64,
        ),
        Family::single(
            "streembit_revoked_keys",
            "Keys on the newest revocation list this node holds.",
            MetricKind::Gauge,
            membership.revoked_count() as u64,
        ),
    ];
    if let Some(end) = own.and_then(|o| o.credential.expires) {
        out.push(Family::real(
            "streembit_credential_expiry_seconds",
            "Seconds until this agent's own credential expires (negative: expired); warned about 30 days before.",
            (end.0 as f64 - now.0 as f64) / 1000.0,
        ));
    }
    out
}

/// Closes everything a key holds once it leaves the membership (allowlist
/// reload, revocation list): connections and relayed sessions (the node),
/// its DHT records, its subscriber slots and queues (the devices).
pub(super) fn spawn_removals(membership: &Membership, node: NodeHandle, devices: Devices) {
    let mut removals = membership.removals();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let keys = match removals.recv().await {
                Ok(keys) => keys,
                // Missed some: nothing to name, but every stream and
                // delivery re-checks admission anyway.
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "membership removals missed; re-checked per stream"
                    );
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            for k in &keys {
                let _ = tokio::time::timeout(Duration::from_secs(5), node.forget(*k)).await;
                let dropped = devices.outboxes().forget_subscriber(k);
                if dropped > 0 {
                    tracing::info!(key = %k, subscriptions = dropped, "removed member's subscriptions deleted");
                }
            }
            tracing::info!(
                removed = keys.len(),
                "members removed: their connections, records and subscriptions are gone"
            );
        }
    });
}

/// A gateway whose own credential is not of the gateway role cannot
/// admit the devices it hosts: peers refuse them. Said at start and reload.
pub(super) fn warn_if_devices_refused(own: Option<&OwnCredential>, devices: usize) {
    if devices > 0 && own.is_some_and(|o| o.credential.role != Role::Gateway) {
        tracing::warn!(
            devices,
            "this agent hosts devices but its credential is not of the gateway role: peers will refuse its devices (issue it one with `--role gateway`)"
        );
    }
}

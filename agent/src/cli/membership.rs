//! Running a private network: `network create`, `member issue`,
//! `member revoke` and `members`.
//!
//! `network create` and `member issue` are offline (they need an admin key
//! file, nothing else); `member revoke` signs the next revocation list
//! with the admin key and hands it to the local agent, which applies it
//! and passes it on to every peer; `members` asks the local agent.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::agent_client::post;
use super::agent_cmds::{fetch, refused, socket, write};
use super::{ConfigArg, Failure, JsonArgs};
use crate::api::MembersView;
use crate::daemon::config::AgentConfig;
use crate::identity::{KeyFile, Keypair, PublicKey};
use crate::wire::membership::{Credential, Revocations, Role};
use crate::wire::UnixMillis;

/// `network …`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a private network: an admin key, and the config lines every
    /// member's agent.toml needs.
    Create(NetworkCreateArgs),
}

/// Arguments of `network create`.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// The network's name (1 to 32 of a-z, 0-9, '.', '_', '-').
    pub name: String,
    /// Where to write the admin key [default: ./NAME-admin.pem].
    #[arg(long, value_name = "FILE")]
    pub admin_key: Option<PathBuf>,
}

/// `member …`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Sign a credential for a member's key with the admin key(s).
    Issue(IssueArgs),
    /// Revoke keys network-wide: the next revocation list, signed with the
    /// admin key(s), handed to the local agent, which passes it on.
    Revoke(RevokeArgs),
}

/// Arguments of `member issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The member's public key (`streembit id` on its machine).
    pub key: String,
    /// `gateway` (hosts devices and admits them) or `member`.
    #[arg(long)]
    pub role: String,
    /// Last day of validity, YYYY-MM-DD (UTC) [default: no expiry;
    /// revocation ends it].
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,
    /// The network [default: from the config].
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// Admin key file(s), as many as the network's threshold
    /// [default: ./NETWORK-admin.pem].
    #[arg(long = "admin-key", value_name = "FILE")]
    pub admin_keys: Vec<PathBuf>,
    /// Serial number for your records [default: the time of issue, ms].
    #[arg(long)]
    pub serial: Option<u64>,
    /// Where to write the credential [default: ./KEY8.credential.cose].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// Arguments of `member revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The keys to revoke.
    #[arg(required = true)]
    pub keys: Vec<String>,
    /// Admin key file(s), as many as the network's threshold
    /// [default: ./NETWORK-admin.pem].
    #[arg(long = "admin-key", value_name = "FILE")]
    pub admin_keys: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

fn now() -> UnixMillis {
    crate::clock::Clock::system().wall()
}

fn admin_keys(files: &[PathBuf], network: &str) -> Result<Vec<Keypair>, Failure> {
    let default = [PathBuf::from(format!("{network}-admin.pem"))];
    let files = if files.is_empty() {
        &default[..]
    } else {
        files
    };
    files
        .iter()
        .map(|f| {
            KeyFile::load(f).map_err(|e| {
                Failure::usage(format!(
                    "{e}\n(the admin key is the file `streembit network create` wrote; name it with --admin-key)"
                ))
            })
        })
        .collect()
}

fn parse_key(s: &str) -> Result<PublicKey, Failure> {
    s.parse()
        .map_err(|e| Failure::usage(format!("{s:?} is not a public key: {e}")))
}

/// `network create NAME`.
pub(super) fn create(args: &NetworkCreateArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let network: crate::wire::NetworkId = args.name.parse().map_err(Failure::usage)?;
    if network.as_str() == "public" {
        return Err(Failure::usage(
            "\"public\" is the public network: choose another name",
        ));
    }
    let path = args
        .admin_key
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{network}-admin.pem")));
    let admin = Keypair::generate();
    KeyFile::create(&path, &admin, false).map_err(Failure::usage)?;
    write(
        out,
        &format!(
            "# Admin key of network {network}: {path}\n\
             # Keep it offline; it signs credentials and revocations.\n\
             # Every member's agent.toml:\n\
             network = \"{network}\"\n\
             admins = [\"{key}\"]\n\
             credential_file = \"/etc/streembit/credential.cose\"\n\
             # Then, for each member: streembit member issue <its key> --role gateway|member --admin-key {path}\n",
            path = path.display(),
            key = admin.public()
        ),
    )
}

/// `member issue KEY --role R`.
pub(super) fn issue(args: &IssueArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let subject = parse_key(&args.key)?;
    let role = match Role::parse(&args.role) {
        Some(r @ (Role::Gateway | Role::Member)) => r,
        _ => {
            return Err(Failure::usage(format!(
                "--role {:?}: use gateway (hosts devices) or member (a device is admitted by its gateway)",
                args.role
            )))
        }
    };
    let network = match &args.network {
        Some(n) => n.clone(),
        None => {
            AgentConfig::load(args.config.config.as_deref())
                .map_err(Failure::config)?
                .network
        }
    };
    let network: crate::wire::NetworkId = network.parse().map_err(Failure::usage)?;
    let expires = match &args.expires {
        // Valid through the whole of the day named.
        Some(d) => Some(UnixMillis(
            crate::clock::parse_date(d).map_err(Failure::usage)?.0 + 86_400_000 - 1,
        )),
        None => None,
    };
    let issued = now();
    let admins = admin_keys(&args.admin_keys, network.as_str())?;
    let credential = Credential {
        network: network.to_string(),
        subject,
        role,
        issued,
        expires,
        serial: args.serial.unwrap_or(issued.0),
    };
    let signers: Vec<&Keypair> = admins.iter().collect();
    let bytes = credential.sign(&signers);
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.credential.cose", &args.key[..8])));
    write_file(&path, &bytes)?;
    write(
        out,
        &format!(
            "wrote {}: {} of network {network}, {}\n\
             # On that machine: put it at the config's credential_file (e.g. /etc/streembit/credential.cose).\n",
            path.display(),
            role.as_str(),
            match expires {
                Some(e) => format!("valid through {}", crate::clock::format_date(e)),
                None => "no expiry (revocation ends it)".to_owned(),
            }
        ),
    )
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// `member revoke KEY…`.
pub(super) fn revoke(args: &RevokeArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let keys: Vec<PublicKey> = args
        .keys
        .iter()
        .map(|k| parse_key(k))
        .collect::<Result<_, _>>()?;
    let (held, _): (MembersView, _) = fetch(&args.config, "/v1/members")?;
    if !held.private || held.admins.is_empty() {
        return Err(Failure::usage(format!(
            "network {} has no admin keys: revocation lists need them (an allowlist entry is removed by editing the allowlist and reloading)",
            held.network
        )));
    }
    let mut revoked = held
        .revoked
        .iter()
        .map(|k| parse_key(k))
        .collect::<Result<std::collections::BTreeSet<_>, _>>()?;
    revoked.extend(keys.iter().copied());
    let list = Revocations {
        network: held.network.clone(),
        seq: held.revocation_seq + 1,
        issued: now(),
        revoked,
    };
    let admins = admin_keys(&args.admin_keys, &held.network)?;
    let signers: Vec<&Keypair> = admins.iter().collect();
    let (status, body) = post(
        &socket(&args.config)?,
        "/v1/revocations",
        list.sign(&signers),
    )?;
    refused(status, &body)?;
    write(
        out,
        &format!(
            "revoked {} key(s) at sequence {}; the agent applies it and passes it on to its peers\n",
            keys.len(),
            list.seq
        ),
    )
}

/// `members [--json]`.
pub(super) fn members(args: &JsonArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let (m, raw): (MembersView, _) = fetch(&args.config, "/v1/members")?;
    if args.json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let credential = match &m.credential {
        Some(c) => format!(
            "{} (serial {}), {}",
            c.role,
            c.serial,
            match c.expires_unix_ms {
                Some(e) => format!("expires {}", crate::clock::format_date(UnixMillis(e))),
                None => "no expiry".to_owned(),
            }
        ),
        None => "none".to_owned(),
    };
    let mut text = format!(
        "network:     {} ({})\nadmins:      {} (threshold {})\nrevocations: sequence {}, {} key(s) revoked\ncredential:  {credential}\n",
        m.network,
        if m.private { "private" } else { "public" },
        if m.admins.is_empty() { "none".to_owned() } else { m.admins.join(", ") },
        m.admin_threshold,
        m.revocation_seq,
        m.revoked.len(),
    );
    for k in &m.revoked {
        text.push_str(&format!("  revoked {k}\n"));
    }
    for w in &m.warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    write(out, &text)
}

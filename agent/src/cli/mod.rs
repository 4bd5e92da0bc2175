//! The `streembit` command line: argument definitions and the offline
//! commands (`keygen`, `id`, `sign`, `verify`).
//!
//! - [`keys`]: `keygen` and `id`.
//! - [`envelope`]: `sign` and `verify`, the operator's tools to make and
//!   inspect wire traffic.
//! - [`encoding`]: raw / hex / base64 input and output.
//! - `agent_cmds` / `agent_client`: `status`, `peers`, `discover`, `lookup`,
//!   `metrics`, `devices` — thin clients of the running agent's local API.
//! - `device_cmds`: `read`, `write` and subscriptions, for devices
//!   anywhere on the network, through the local API.
//! - `membership`: `network create`, `member issue`, `member revoke` and
//!   `members`: running a private network.
//! - `reload`: `streembit reload`, the unit's ExecReload: signals the agent
//!   and returns once it has reloaded.
//! - `demo`: `streembit demo`, a local network with simulated devices.
//!
//! Exit codes: 0 success, 1 a verification or request failed, 2 bad usage
//! or config, 3 the agent is not running.

mod agent_client;
mod agent_cmds;
mod demo;
mod device_cmds;
mod encoding;
mod envelope;
mod keys;
mod membership;
mod reload;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use encoding::Encoding;
pub use membership::{MemberCommand, NetworkCommand};

/// Exit code: the command worked.
pub const EXIT_OK: u8 = 0;
/// Exit code: an envelope did not verify.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: bad usage, config or key file.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the agent is not running (its API socket does not answer).
pub const EXIT_NOT_RUNNING: u8 = 3;

/// Streembit edge agent: joins the Streembit P2P overlay and gives every
/// local device its own signing identity.
#[derive(Debug, Parser)]
#[command(name = "streembit", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an identity and print its public key.
    Keygen(KeygenArgs),
    /// Print this agent's public key.
    Id(ConfigArg),
    /// Seal a payload into a signed envelope (JSON input is stored as CBOR).
    Sign(SignArgs),
    /// Check a signed envelope and print what it says.
    Verify(VerifyArgs),
    /// Run the agent in the foreground (systemd Type=notify).
    Run(ConfigArg),
    /// Validate the agent config (all problems, each with file and key).
    CheckConfig(ConfigArg),
    /// Make the running agent re-read its bridge files and allowlist, and
    /// wait until it has (systemd's ExecReload); prints the outcome, exits
    /// 1 if a file was refused (its previous version keeps running).
    Reload(ReloadArgs),
    /// Ask the running agent for its status.
    Status(JsonArgs),
    /// List the running agent's routing-table contacts.
    Peers(JsonArgs),
    /// List the agents the running agent hears on its LAN (mDNS): key,
    /// network, addresses, and whether it is connected to each.
    Discover(JsonArgs),
    /// Print the running agent's web console URL (it carries the login
    /// token: keep it to yourself); `console password --out FILE` makes
    /// the console's password file from a password read on stdin.
    Console(ConsoleArgs),
    /// Find a peer's or device's record in the DHT.
    Lookup(LookupArgs),
    /// Print the running agent's metrics (Prometheus text).
    Metrics(ConfigArg),
    /// Hosted devices: name, bridge, public key, state, latest readings.
    Devices(JsonArgs),
    /// Latest signed readings of a device anywhere on the network (by
    /// key), verified with its key; or of a device hosted here (by name).
    Read(ReadArgs),
    /// Write a point: by device key, a command signed by this agent that
    /// the device's gateway checks against the point's `writers`; by name,
    /// the operator's own write to a device hosted here.
    Write(WriteArgs),
    /// Subscribe to a device's readings: they are delivered to this agent
    /// as they are made, and kept for it while it is away.
    Subscribe(KeyArgs),
    /// End a subscription (and delete what it received).
    Unsubscribe(KeyArgs),
    /// This agent's subscriptions and their counters.
    Subscriptions(JsonArgs),
    /// Readings received from a subscribed device, oldest first.
    Inbox(InboxArgs),
    /// Private networks: create one (an admin key and config lines).
    Network {
        /// What to do.
        #[command(subcommand)]
        command: membership::NetworkCommand,
    },
    /// Members of a private network: issue credentials, revoke keys.
    Member {
        /// What to do.
        #[command(subcommand)]
        command: membership::MemberCommand,
    },
    /// What the running agent knows of its network's membership: admins,
    /// revocation sequence and revoked keys, its own credential.
    Members(JsonArgs),
    /// A small network on loopback with simulated devices: readings
    /// signed, looked up, fetched and verified; writes refused and applied.
    Demo(DemoArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    Man,
}

/// `[--json] [--config FILE]`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// Arguments of `console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub action: Option<ConsoleAction>,
}

/// `console` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsoleAction {
    /// Hash a password read on stdin (one line) into FILE (mode 0600), for
    /// `[web] password_file`: the console's login on an address other than
    /// loopback.
    Password {
        /// Where to write the hash.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Arguments of `reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The agent's process id [default: the process serving the API
    /// socket].
    #[arg(long)]
    pub pid: Option<u32>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub timeout: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// Arguments of `read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The device's public key (or its name).
    pub device: String,
    /// Only this point.
    pub point: Option<String>,
    /// Print each point's signed envelope (COSE_Sign1, hex), for
    /// verification with any COSE library and the device key alone.
    #[arg(long)]
    pub cose: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: JsonArgs,
}

/// Arguments of `write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The device's public key (or its name).
    pub device: String,
    /// The point to write.
    pub point: String,
    /// The value: true/false, a number, or text.
    pub value: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run for this many seconds, then print the summary (Ctrl-C ends it
    /// early, with the summary too).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Where the agents keep their state [default: a new directory in the
    /// system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the directory (keys, logs, bridge files) afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// A device key and `--config`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The device's public key (64 hex characters).
    pub device: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// Arguments of `inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// The device's public key (64 hex characters).
    pub device: String,
    /// Only readings with a sequence above this.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// At most this many.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Print `seq point envelope-hex` per reading.
    #[arg(long)]
    pub cose: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: JsonArgs,
}

/// Arguments of `lookup`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The public key to look up (64 hex characters).
    pub pubkey: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: JsonArgs,
}

/// `--config FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Agent config file [default: /etc/streembit/agent.toml if present].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Arguments of `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key [default: the agent's identity.pem in its
    /// state directory].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing key (its identity is lost).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// Output/input encoding flags shared by `sign` and `verify`.
#[derive(Debug, Args, Clone, Copy)]
pub struct EncodingArgs {
    /// Envelope as lowercase hex text.
    #[arg(long, conflicts_with = "base64")]
    pub hex: bool,
    /// Envelope as standard base64 text.
    #[arg(long)]
    pub base64: bool,
}

/// Arguments of `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Message kind (e.g. reading, note, ping).
    #[arg(long)]
    pub kind: String,
    /// Network id [default: from config, else "public"].
    #[arg(long, value_name = "ID")]
    pub network: Option<String>,
    /// Signing key (PKCS#8 PEM) [default: the agent's identity].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Recipient's public key, for point-to-point kinds.
    #[arg(long, value_name = "PUBKEY")]
    pub to: Option<String>,
    /// Payload file, or - for standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub encoding: EncodingArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Expected network id [default: from config, else "public"].
    #[arg(long, value_name = "ID")]
    pub network: Option<String>,
    /// Recipient's public key, for point-to-point kinds [default: this
    /// agent's key].
    #[arg(long, value_name = "PUBKEY")]
    pub to: Option<String>,
    /// Also require the timestamp to be within this many seconds of now.
    #[arg(long, value_name = "SECS")]
    pub fresh: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Envelope file, or - for standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub encoding: EncodingArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// A command's failure: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// What went wrong, one line per problem.
    pub message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl std::fmt::Display) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.to_string(),
        }
    }

    /// A config error: every problem on its own line, exit code 2.
    pub(crate) fn config(e: crate::daemon::config::ConfigError) -> Self {
        Self::usage(e)
    }
}

/// `check-config`: the agent config and every bridge file, all problems.
fn check_config(
    path: Option<&std::path::Path>,
    out: &mut dyn std::io::Write,
) -> Result<(), Failure> {
    let summary = crate::daemon::check_config(path).map_err(|p| Failure::usage(p.join("\n")))?;
    writeln!(out, "{summary}").map_err(Failure::usage)
}

/// Prints a failure to stderr as `streembit: <message>`: under the
/// journal (ExecStart, ExecReload), one entry at priority error.
pub fn report(failure: &Failure) {
    crate::daemon::logging::print_stderr(3, &format!("streembit: {}", failure.message));
}

/// Runs an offline command, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    // The agent logs this itself; every other command says it here.
    if !matches!(cli.command, Command::Run(_)) {
        let ignored = crate::daemon::config::unknown_env_vars();
        if !ignored.is_empty() {
            crate::daemon::logging::print_stderr(
                4,
                &format!(
                    "streembit: warning: {}",
                    crate::daemon::config::unknown_env_warning(&ignored)
                ),
            );
        }
    }
    match cli.command {
        Command::Keygen(a) => keys::keygen(&a, out),
        Command::Id(a) => keys::id(&a, out),
        Command::Sign(a) => envelope::sign(&a, out),
        Command::Verify(a) => envelope::verify(&a, out),
        Command::Run(a) => crate::daemon::run(a.config.as_deref()).map_err(|e| Failure {
            code: e.code,
            message: e.message,
        }),
        Command::CheckConfig(a) => check_config(a.config.as_deref(), out),
        Command::Reload(a) => reload::reload(&a, out),
        Command::Status(a) => agent_cmds::status(&a.config, a.json, out),
        Command::Peers(a) => agent_cmds::peers(&a.config, a.json, out),
        Command::Discover(a) => agent_cmds::discover(&a.config, a.json, out),
        Command::Console(a) => match &a.action {
            None => agent_cmds::console(&a.config, out),
            Some(ConsoleAction::Password { out: file }) => console_password(file, out),
        },
        Command::Lookup(a) => agent_cmds::lookup(&a.common.config, &a.pubkey, a.common.json, out),
        Command::Metrics(a) => agent_cmds::metrics(&a, out),
        Command::Devices(a) => agent_cmds::devices(&a.config, a.json, out),
        Command::Read(a) => device_cmds::read(&a, out),
        Command::Write(a) => device_cmds::write_point(&a, out),
        Command::Subscribe(a) => device_cmds::subscribe(&a, true, out),
        Command::Unsubscribe(a) => device_cmds::subscribe(&a, false, out),
        Command::Subscriptions(a) => device_cmds::subscriptions(&a, out),
        Command::Inbox(a) => device_cmds::inbox(&a, out),
        Command::Network {
            command: membership::NetworkCommand::Create(a),
        } => membership::create(&a, out),
        Command::Member {
            command: membership::MemberCommand::Issue(a),
        } => membership::issue(&a, out),
        Command::Member {
            command: membership::MemberCommand::Revoke(a),
        } => membership::revoke(&a, out),
        Command::Members(a) => membership::members(&a, out),
        Command::Demo(a) => demo::run(&a, out),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "streembit", out);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(out)
            .map_err(Failure::usage),
    }
}

/// `console password --out FILE`: one line of stdin, hashed, 0600.
fn console_password(file: &std::path::Path, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("cannot read the password from stdin: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.len() < 8 {
        return Err(Failure::usage("the password must be at least 8 characters"));
    }
    let hash = crate::daemon::password_hash(password);
    crate::daemon::write_private(file, hash.as_bytes())
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", file.display())))?;
    writeln!(
        out,
        "wrote {}: set `[web] password_file` to it",
        file.display()
    )
    .map_err(Failure::usage)
}

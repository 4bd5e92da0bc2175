//! `streembit keygen` and `streembit id`.

use std::io::{ErrorKind, Write};

use super::{ConfigArg, Failure, KeygenArgs};
use crate::daemon::config::AgentConfig;
use crate::identity::{IdentityError, KeyFile, Keypair, Keystore};

pub(super) fn keygen(args: &KeygenArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let path = match &args.out {
        Some(p) => p.clone(),
        None => keystore(&args.config)?.gateway_key_path(),
    };
    let key = Keypair::generate();
    KeyFile::create(&path, &key, args.force).map_err(Failure::usage)?;
    writeln!(out, "{}", key.public()).map_err(Failure::usage)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

pub(super) fn id(args: &ConfigArg, out: &mut dyn Write) -> Result<(), Failure> {
    let path = keystore(args)?.gateway_key_path();
    let key = KeyFile::load(&path).map_err(|e| match e {
        IdentityError::Io { ref source, .. } if source.kind() == ErrorKind::NotFound => {
            Failure::usage(format!(
                "{e}\n(no identity yet: create one with `streembit keygen` or start the agent once)"
            ))
        }
        other => Failure::usage(other),
    })?;
    writeln!(out, "{}", key.public()).map_err(Failure::usage)
}

pub(super) fn keystore(args: &ConfigArg) -> Result<Keystore, Failure> {
    let config = AgentConfig::load(args.config.as_deref()).map_err(Failure::usage)?;
    Ok(Keystore::new(config.state_dir()))
}

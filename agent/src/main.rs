//! The `streembit` binary: parses the command line and hands over to the
//! library. Exit codes are documented in [`streembit_agent::cli`].

use std::process::ExitCode;

use clap::Parser;
use streembit_agent::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match cli::run(cli, &mut stdout) {
        Ok(()) => ExitCode::from(cli::EXIT_OK),
        Err(failure) => {
            cli::report(&failure);
            ExitCode::from(failure.code)
        }
    }
}

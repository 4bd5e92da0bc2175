//! Collects validation problems so a file reports all of them at once.

use super::ConfigError;

#[derive(Debug, Default)]
pub(super) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(super) fn push(&mut self, path: &str, reason: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.to_owned(),
            reason: reason.into(),
        });
    }

    /// Pushes `reason` when `ok` is false.
    pub(super) fn check(&mut self, ok: bool, path: &str, reason: impl Into<String>) {
        if !ok {
            self.push(path, reason);
        }
    }

    pub(super) fn finish(self) -> Result<(), Vec<ConfigError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

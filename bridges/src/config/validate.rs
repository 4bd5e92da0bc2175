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

    /// A point's `scale` and `offset`: only on numeric points (`numeric`,
    /// described to the user as `numeric_types`), finite, scale non-zero.
    pub(super) fn scaling(
        &mut self,
        pp: &str,
        scale: Option<f64>,
        offset: Option<f64>,
        numeric: bool,
        numeric_types: &str,
    ) {
        if (scale.is_some() || offset.is_some()) && !numeric {
            self.push(
                &format!("{pp}.scale"),
                format!("scale and offset apply to {numeric_types} only"),
            );
        }
        if let Some(s) = scale {
            self.check(
                s.is_finite() && s != 0.0,
                &format!("{pp}.scale"),
                "must be finite and non-zero",
            );
        }
        if let Some(o) = offset {
            self.check(o.is_finite(), &format!("{pp}.offset"), "must be finite");
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

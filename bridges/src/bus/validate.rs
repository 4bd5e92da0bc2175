//! Collects validation problems so a file reports all of them at once,
//! and the checks every bus's table shares.

use std::collections::HashSet;

use crate::error::ConfigError;

/// Every problem found so far, each with its key path.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(crate) fn push(&mut self, path: &str, reason: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.to_owned(),
            reason: reason.into(),
        });
    }

    /// Pushes `reason` when `ok` is false.
    pub(crate) fn check(&mut self, ok: bool, path: &str, reason: impl Into<String>) {
        if !ok {
            self.push(path, reason);
        }
    }

    /// A point's `scale` and `offset`: only on numeric points (`numeric`,
    /// described to the user as `numeric_types`), finite, scale non-zero.
    pub(crate) fn scaling(
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

    pub(crate) fn finish(self) -> Result<(), Vec<ConfigError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// A list of named items (a bus's devices, a device's points) at
/// `list_path`: at least one `noun`, names valid and unique.
pub(crate) fn check_named_list<'a>(
    errs: &mut Errors,
    list_path: &str,
    noun: &str,
    names: impl ExactSizeIterator<Item = &'a str>,
) {
    errs.check(
        names.len() > 0,
        list_path,
        format!("needs at least one {noun}"),
    );
    check_names(
        errs,
        names
            .enumerate()
            .map(|(i, name)| (format!("{list_path}[{i}].name"), name)),
    );
}

/// Checks names are non-empty, printable identifiers and unique in `names`.
pub(crate) fn check_names<'a>(
    errs: &mut Errors,
    items: impl IntoIterator<Item = (String, &'a str)>,
) {
    let mut seen = HashSet::new();
    for (path, name) in items {
        if name.is_empty() {
            errs.push(&path, "must not be empty");
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errs.push(
                &path,
                format!("{name:?} may only contain letters, digits, '-', '_' and '.'"),
            );
        } else if !seen.insert(name) {
            errs.push(&path, format!("{name:?} is used twice"));
        }
    }
}

/// Writers are Ed25519 public keys in their text form: 64 lowercase hex.
pub(crate) fn check_writers(errs: &mut Errors, path: &str, writers: &[String]) {
    for (i, w) in writers.iter().enumerate() {
        let ok = w.len() == 64 && w.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            errs.push(
                &format!("{path}[{i}]"),
                "a writer is a public key: exactly 64 lowercase hex characters",
            );
        }
    }
}

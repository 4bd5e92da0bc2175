//! The static allowlist file: one key per line, for deployments of a few
//! hand-listed keys (and beside admin keys in bigger ones).

use std::path::Path;

use crate::identity::PublicKey;

/// Parses an allowlist: one 64-hex public key per line; `#` starts a
/// comment; blank lines are ignored. Errors name the line.
pub(crate) fn parse_allowlist(text: &str, origin: &str) -> Result<Vec<PublicKey>, Vec<String>> {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match entry.parse::<PublicKey>() {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(format!("{origin}:{}: {e}", n + 1)),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
}

/// Reads and parses an allowlist file (at most 4 MiB: ~60,000 keys).
pub(crate) fn read_allowlist(path: &Path) -> Result<Vec<PublicKey>, Vec<String>> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    if meta.len() > 4 << 20 {
        return Err(vec![format!("{shown}: allowlist larger than 4 MiB")]);
    }
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    parse_allowlist(&text, &shown.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn allowlist_file_with_comments() {
        let a = Keypair::from_seed(&[1; 32]).public();
        let b = Keypair::from_seed(&[2; 32]).public();
        let text = format!("# site keys\n{a}  # gateway 1\n\n   {b}\n");
        assert_eq!(parse_allowlist(&text, "f"), Ok(vec![a, b]));
        let err = parse_allowlist(&format!("{a}\nnot-a-key\n"), "allow.txt");
        assert!(err.is_err_and(|e| e.len() == 1 && e[0].starts_with("allow.txt:2:")));
    }
}

//! Passwords as mosquitto 2 stores them, `$7$<rounds>$<salt>$<hash>`
//! (PBKDF2-HMAC-SHA512, base64 with padding): the managed broker's
//! `passwd` file and the web console's password file use the one format,
//! hashed and checked here.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand_core::{OsRng, RngCore};

/// `password` hashed with a fresh salt and `rounds` iterations.
pub(crate) fn hash(password: &str, rounds: u32) -> String {
    let mut salt = [0u8; 12];
    OsRng.fill_bytes(&mut salt);
    hash_with(password, &salt, rounds)
}

/// `$7$<rounds>$<salt>$<PBKDF2-HMAC-SHA512(password, salt)>`: what
/// mosquitto_passwd writes and mosquitto checks.
pub(crate) fn hash_with(password: &str, salt: &[u8], rounds: u32) -> String {
    let mut out = [0u8; 64];
    let rounds = NonZeroU32::new(rounds).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        rounds,
        salt,
        password.as_bytes(),
        &mut out,
    );
    format!("$7${rounds}${}${}", B64.encode(salt), B64.encode(out))
}

/// Whether `password` matches `stored` (in constant time); a stored value
/// that is not of this form matches nothing.
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    let mut parts = stored.trim().split('$');
    let (Some(""), Some("7"), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(rounds), Ok(salt), Ok(hash)) = (
        rounds.parse::<u32>().ok().and_then(NonZeroU32::new),
        B64.decode(salt),
        B64.decode(hash),
    ) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        rounds,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_one_mosquitto_passwd_writes_and_it_verifies() {
        // `mosquitto_passwd -b passwd dev secret` (mosquitto 2.0.11).
        let stored = "$7$101$DmLwlgF52gRIVjHZ$xHr5p3+TszszWzI8P7kJG/TpM1QBLhJ5XPcXXnQWaQK09s7EHzY13H2RkKWH57g/fwCmPZ1t36QcpzTjxMcZ/A==";
        let salt = B64.decode("DmLwlgF52gRIVjHZ").expect("salt");
        assert_eq!(hash_with("secret", &salt, 101), stored);
        assert!(verify("secret", stored));
        assert!(!verify("Secret", stored));
        assert!(verify("pw", &hash("pw", 1000)));
        for bad in ["", "secret", "$7$0$AA==$AA==", "$6$101$x$y"] {
            assert!(!verify("secret", bad), "{bad}");
        }
    }
}

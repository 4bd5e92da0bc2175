//! A seed peer as written in `seeds` and in `seeds_dns` TXT records:
//! `"<pubkey-hex>@host:port"`.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::identity::PublicKey;

/// A seed peer: its key and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The seed's public key.
    pub key: PublicKey,
    /// Its address as written (host may be a name).
    pub addr: String,
}

impl Seed {
    /// Parses `"<pubkey-hex>@host:port"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (key, addr) = s
            .split_once('@')
            .ok_or_else(|| format!("{s:?} is not \"<pubkey-hex>@host:port\""))?;
        let key = key.parse::<PublicKey>().map_err(|e| e.to_string())?;
        if addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(format!("{addr:?} is not host:port"));
        }
        Ok(Self {
            key,
            addr: addr.to_owned(),
        })
    }

    /// Resolves the address (DNS names included); the first answer wins.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        self.addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve seed {}: {e}", self.addr))?
            .next()
            .ok_or_else(|| format!("seed {} resolves to no address", self.addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn seeds_parse_strictly() {
        let k = Keypair::from_seed(&[1; 32]).public();
        let s = Seed::parse(&format!("{k}@127.0.0.1:7470")).expect("seed");
        assert_eq!(s.key, k);
        assert_eq!(s.resolve(), Ok("127.0.0.1:7470".parse().expect("addr")));
        assert!(Seed::parse("127.0.0.1:7470").is_err());
        assert!(Seed::parse(&format!("{k}@host")).is_err());
        assert!(Seed::parse("abc@127.0.0.1:1").is_err());
    }
}

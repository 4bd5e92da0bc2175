//! How envelopes travel through files and pipes: raw bytes, hex or base64.

use std::io::Read;
use std::path::Path;

use base64::Engine;

use super::{EncodingArgs, Failure};

/// Envelope bytes as stored or printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes themselves.
    Raw,
    /// Lowercase hex text.
    Hex,
    /// Standard base64 text.
    Base64,
}

impl From<EncodingArgs> for Encoding {
    fn from(a: EncodingArgs) -> Self {
        match (a.hex, a.base64) {
            (true, _) => Encoding::Hex,
            (_, true) => Encoding::Base64,
            _ => Encoding::Raw,
        }
    }
}

impl Encoding {
    /// Encodes bytes for output (text forms end with a newline).
    pub fn encode(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Encoding::Raw => bytes.to_vec(),
            Encoding::Hex => format!("{}\n", hex::encode(bytes)).into_bytes(),
            Encoding::Base64 => format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
            .into_bytes(),
        }
    }

    /// Decodes input; text forms may be surrounded by white space.
    pub fn decode(self, input: &[u8]) -> Result<Vec<u8>, Failure> {
        let text = || {
            std::str::from_utf8(input)
                .map(str::trim)
                .map_err(|_| Failure::usage("input is not text"))
        };
        match self {
            Encoding::Raw => Ok(input.to_vec()),
            Encoding::Hex => {
                hex::decode(text()?).map_err(|e| Failure::usage(format!("bad hex input: {e}")))
            }
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(text()?)
                .map_err(|e| Failure::usage(format!("bad base64 input: {e}"))),
        }
    }
}

/// Reads a whole file, or standard input for `-`, up to `limit` bytes.
pub(crate) fn read_input(path: &Path, limit: usize) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut buf))
    };
    let name = if path == Path::new("-") {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    read.map_err(|e| Failure::usage(format!("cannot read {name}: {e}")))?;
    if buf.len() > limit {
        return Err(Failure::usage(format!(
            "{name} is larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

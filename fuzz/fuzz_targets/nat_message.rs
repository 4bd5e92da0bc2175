//! What a peer can send the NAT service, and what a record can claim as
//! an address: `nat` requests and `nat_answer` answers (CBOR) decode or are
//! refused without panicking, and what decodes encodes back to the same
//! value; peer-record addresses (`ip:port`, `relay:<key>@<ip:port>`)
//! parse or are refused, and what parses prints back to the same address.
//!
//! Input: the first byte picks the decoder (0 request, 1 answer, else
//! address), the rest is its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streembit_agent::internals::node::{decode, encode, NatAnswer, NatRequest, PeerAddr};

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which {
        0 => {
            if let Ok(r) = decode::<NatRequest>(rest) {
                assert_eq!(decode::<NatRequest>(&encode(&r)), Ok(r));
            }
        }
        1 => {
            if let Ok(a) = decode::<NatAnswer>(rest) {
                assert_eq!(decode::<NatAnswer>(&encode(&a)), Ok(a));
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(a) = text.parse::<PeerAddr>() {
                assert_eq!(a.to_string().parse::<PeerAddr>(), Ok(a));
            }
        }
    }
});

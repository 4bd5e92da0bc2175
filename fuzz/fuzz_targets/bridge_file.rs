//! The bridge-file parser (TOML, `deny_unknown_fields`, then validation)
//! on arbitrary text: never panics, every failure names a key path and a
//! reason, and a file that validates yields its bus, whose devices are the
//! ones the file names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streembit_bridges::BridgeFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match BridgeFile::from_toml_str(text) {
        Ok(file) => {
            assert!(file.validate().is_ok());
            let bus = file.clone().into_bus().expect("a valid file has one bus");
            let names = bus.device_names();
            assert!(!names.is_empty());
            for name in &names {
                // Writers are asked per point; unknown points have none.
                assert!(bus.writers(name, "\u{0}no such point").is_empty());
            }
        }
        Err(errs) => {
            assert!(!errs.is_empty());
            assert!(errs
                .iter()
                .all(|e| !e.path.is_empty() && !e.reason.is_empty()));
        }
    }
});

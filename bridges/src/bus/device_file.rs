//! Why a bus's device file (a serial port, an I2C bus) cannot be opened,
//! in words an operator can act on.
//!
//! A gateway may boot with its USB RS-485 adapter unplugged or before
//! i2c-dev is loaded, and an adapter may be pulled while it runs: the
//! bridge then shows its devices offline with one of these reasons and
//! keeps trying. "Absent" is told apart from the other failures because
//! its fix (plug the adapter in, load the module) differs from theirs
//! (group membership, another program holding the port).

use std::io::ErrorKind;

use crate::error::BridgeError;

/// The failure to open `path`, a device file that members of the Unix
/// group `group` may open (`dialout` for serial ports, `i2c` for I2C
/// buses on Debian and Raspberry Pi OS). `detail` is the system's own
/// message, shown only for causes without a reason of their own.
///
/// - not found: `/dev/ttyUSB0 absent`
/// - permission denied: `/dev/ttyUSB0: permission denied (is the agent in
///   group dialout?)`
/// - busy: `/dev/ttyUSB0: busy (another program has it open)`
/// - anything else: `/dev/ttyUSB0: cannot open: <detail>`
pub(crate) fn cannot_open(path: &str, group: &str, kind: ErrorKind, detail: &str) -> BridgeError {
    BridgeError::CannotOpen(match kind {
        ErrorKind::NotFound => format!("{path} absent"),
        ErrorKind::PermissionDenied => {
            format!("{path}: permission denied (is the agent in group {group}?)")
        }
        ErrorKind::ResourceBusy => format!("{path}: busy (another program has it open)"),
        _ => format!("{path}: cannot open: {detail}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_has_its_reason() {
        let reason =
            |kind, detail| cannot_open("/dev/ttyUSB0", "dialout", kind, detail).to_string();
        assert_eq!(
            reason(ErrorKind::NotFound, "No such file or directory"),
            "/dev/ttyUSB0 absent"
        );
        assert_eq!(
            reason(ErrorKind::PermissionDenied, "Permission denied"),
            "/dev/ttyUSB0: permission denied (is the agent in group dialout?)"
        );
        assert_eq!(
            reason(ErrorKind::ResourceBusy, "Device or resource busy"),
            "/dev/ttyUSB0: busy (another program has it open)"
        );
        assert_eq!(
            reason(ErrorKind::Other, "Is a directory"),
            "/dev/ttyUSB0: cannot open: Is a directory"
        );
    }
}

//! What a bus task receives and emits.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::error::CommandError;
use crate::reading::{Command, Reading};
use crate::status::StatusBoard;

/// Where a command's result goes: the handle waits on the other end.
pub(crate) type Reply = oneshot::Sender<Result<(), CommandError>>;

/// A command and where its result goes.
pub(crate) type CommandRequest = (Command, Reply);

/// Everything a bus task talks to, in one value, so that adding a bus does
/// not mean touching the code that spawns it, and every bus answers to the
/// same channels.
///
/// A bus task runs until `readings` is closed (the agent dropped the
/// receiver) or it cannot go on; it answers every request it takes from
/// `commands`, and only it writes `status`.
pub(crate) struct BusIo {
    /// Readings out. The task waits when it is full rather than drop one.
    pub(crate) readings: mpsc::Sender<Reading>,
    /// Commands in, each with its reply.
    pub(crate) commands: mpsc::Receiver<CommandRequest>,
    /// Per-device status, as the handle shows it.
    pub(crate) status: StatusBoard,
    /// The one place the task reads the time.
    pub(crate) clock: Arc<dyn Clock>,
}

//! Starting a bridge and talking to it: the interface the agent uses.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::bus::{BusIo, CommandRequest};
use crate::clock::{Clock, SystemClock};
use crate::config::Bus;
use crate::error::{BridgeError, CommandError};
use crate::reading::{Command, Reading};
use crate::status::{DeviceStatus, StatusBoard, StatusMap};

/// Channel sizes and the clock of a bridge.
#[derive(Clone)]
pub struct BridgeOptions {
    /// Readings buffered before the bridge waits for the consumer (it
    /// waits rather than drop a reading; on MQTT the broker then holds
    /// unacknowledged QoS 1 messages).
    pub readings_capacity: usize,
    /// Commands queued before [`BridgeHandle::submit`] answers `Busy`.
    pub commands_capacity: usize,
    /// Where the event loop reads the time.
    pub clock: Arc<dyn Clock>,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions {
            readings_capacity: 1024,
            commands_capacity: 64,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for BridgeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeOptions")
            .field("readings_capacity", &self.readings_capacity)
            .field("commands_capacity", &self.commands_capacity)
            .finish_non_exhaustive()
    }
}

/// The stream of readings of one bridge. It ends when the bridge stops.
pub type Readings = mpsc::Receiver<Reading>;

/// A running bridge. Dropping the handle stops it.
#[derive(Debug)]
pub struct BridgeHandle {
    commands: mpsc::Sender<CommandRequest>,
    status: watch::Receiver<StatusMap>,
    task: JoinHandle<()>,
}

impl BridgeHandle {
    /// Starts the bus's event loop on `runtime`. Returns the handle and the
    /// readings stream.
    pub fn start(bus: Bus, runtime: &Handle, options: BridgeOptions) -> (BridgeHandle, Readings) {
        let (rtx, rrx) = mpsc::channel(options.readings_capacity.max(1));
        let (ctx, crx) = mpsc::channel(options.commands_capacity.max(1));
        let board = StatusBoard::new(bus.device_names());
        let status = board.subscribe();
        let io = BusIo {
            readings: rtx,
            commands: crx,
            status: board,
            clock: options.clock,
        };
        let task = runtime.spawn(bus.start(io));
        (
            BridgeHandle {
                commands: ctx,
                status,
                task,
            },
            rrx,
        )
    }

    /// Queues a command without waiting. The receiver yields `Ok(())` once
    /// the device (for MQTT: the broker, QoS 1) acknowledged the write.
    pub fn submit(
        &self,
        command: Command,
    ) -> Result<oneshot::Receiver<Result<(), CommandError>>, BridgeError> {
        let (tx, rx) = oneshot::channel();
        self.commands.try_send((command, tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => BridgeError::Busy,
            mpsc::error::TrySendError::Closed(_) => BridgeError::Stopped,
        })?;
        Ok(rx)
    }

    /// Sends a command and waits for its result.
    pub async fn command(&self, command: Command) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send((command, tx))
            .await
            .map_err(|_| BridgeError::Stopped)?;
        rx.await.map_err(|_| BridgeError::Stopped)?
    }

    /// A snapshot of every device's status.
    #[must_use]
    pub fn status(&self) -> StatusMap {
        self.status.borrow().clone()
    }

    /// One device's status.
    #[must_use]
    pub fn device_status(&self, device: &str) -> Option<DeviceStatus> {
        self.status.borrow().get(device).cloned()
    }

    /// A watch on the status map, to await changes instead of polling.
    #[must_use]
    pub fn watch_status(&self) -> watch::Receiver<StatusMap> {
        self.status.clone()
    }

    /// Stops the bridge and waits until its event loop is gone, so its
    /// serial port, socket or bus is closed: call this before starting a
    /// replacement bridge on the same port (e.g. on a bridge file reload).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// True once the event loop has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for BridgeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

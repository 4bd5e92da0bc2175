//! stub
use std::sync::Arc;
use tokio::sync::mpsc;
pub(crate) async fn run_linux(_b: crate::config::I2cBus, _r: mpsc::Sender<crate::Reading>, _c: mpsc::Receiver<crate::bridge::CommandRequest>, _s: crate::status::StatusBoard, _k: Arc<dyn crate::Clock>) {}

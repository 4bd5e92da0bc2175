//! The demo's simulated devices, so it needs nothing but this binary: a
//! Modbus TCP energy meter (tokio-modbus's server) and a Tasmota-style MQTT
//! plug on the gateway's broker.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_modbus::prelude::{ExceptionCode, Request, Response};
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};

/// Holding registers of the simulated meter: 0 = voltage in 0.1 V,
/// 1 = current in mA, 10 = a writable set-point.
pub(super) const REG_VOLTAGE: usize = 0;
/// Current, mA.
pub(super) const REG_CURRENT: usize = 1;
/// The writable set-point.
pub(super) const REG_SETPOINT: usize = 10;
const REGS: usize = 32;

/// The meter's registers, shared with the demo so it can show a write land.
pub(super) type Registers = Arc<Mutex<[u16; REGS]>>;

#[derive(Clone)]
struct Meter(Registers);

impl tokio_modbus::server::Service for Meter {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let Ok(mut regs) = self.0.lock() else {
            return std::future::ready(Err(ExceptionCode::ServerDeviceFailure));
        };
        let range = |addr: u16, n: usize| {
            let a = usize::from(addr);
            (a + n <= REGS).then_some(a..a + n)
        };
        let answer = match req {
            Request::ReadHoldingRegisters(addr, n) => range(addr, usize::from(n))
                .map(|r| Response::ReadHoldingRegisters(regs[r].to_vec())),
            Request::WriteSingleRegister(addr, v) => range(addr, 1).map(|r| {
                regs[r.start] = v;
                Response::WriteSingleRegister(addr, v)
            }),
            Request::WriteMultipleRegisters(addr, values) => range(addr, values.len()).map(|r| {
                regs[r].copy_from_slice(&values);
                Response::WriteMultipleRegisters(addr, values.len() as u16)
            }),
            _ => return std::future::ready(Err(ExceptionCode::IllegalFunction)),
        };
        std::future::ready(answer.ok_or(ExceptionCode::IllegalDataAddress))
    }
}

/// Serves the simulated meter on `addr` and makes its readings move.
pub(super) async fn meter(addr: SocketAddr) -> std::io::Result<Registers> {
    let regs: Registers = Arc::new(Mutex::new([0; REGS]));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let server = Server::new(listener);
    let service = Meter(regs.clone());
    tokio::spawn(async move {
        let on_connected = |stream, peer| {
            let service = service.clone();
            async move { accept_tcp_connection(stream, peer, |_| Ok(Some(service.clone()))) }
        };
        if let Err(e) = server.serve(&on_connected, |_| {}).await {
            tracing::warn!(error = %e, "simulated meter stopped");
        }
    });
    let moving = regs.clone();
    tokio::spawn(async move {
        let mut t: u32 = 0;
        loop {
            if let Ok(mut r) = moving.lock() {
                // 230 V ± 2 V and a load that comes and goes.
                r[REG_VOLTAGE] = 2300 + (t * 7 % 40) as u16 - 20;
                r[REG_CURRENT] = 400 + (t * 131 % 900) as u16;
            }
            t += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Ok(regs)
}

/// A Tasmota-style plug on the broker at `broker`: reports its power every
/// second and switches its relay on `cmnd/plug/POWER`, confirming on
/// `stat/plug/POWER` as a real one does.
pub(super) fn plug(broker: SocketAddr, login: &super::PlugLogin) {
    let mut options = MqttOptions::new("demo-plug", broker.ip().to_string(), broker.port());
    options.set_credentials("demo-plug", login.plug.clone());
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let commands = client.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = commands
                        .subscribe("cmnd/plug/POWER", QoS::AtLeastOnce)
                        .await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == "cmnd/plug/POWER" => {
                    let _ = commands
                        .publish(
                            "stat/plug/POWER",
                            QoS::AtLeastOnce,
                            true,
                            p.payload.to_vec(),
                        )
                        .await;
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    });
    tokio::spawn(async move {
        let mut t: u32 = 0;
        loop {
            let power = 40.0 + f64::from(t * 37 % 200) / 10.0;
            let payload = format!("{{\"ENERGY\":{{\"Power\":{power:.1}}}}}");
            let _ = client
                .publish("tele/plug/SENSOR", QoS::AtMostOnce, false, payload)
                .await;
            t += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

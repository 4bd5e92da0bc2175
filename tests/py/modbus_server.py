#!/usr/bin/env python3
"""A pymodbus (3.16) server the Rust tests drive over stdin.

Serves one or more device ids on a serial port (RTU framing, for one end of a
socat PTY pair) or on a loopback TCP port. Each device has its own four tables
(coils, discrete inputs, holding and input registers), 0-based, REG_COUNT
registers each; addresses past the end answer ILLEGAL DATA ADDRESS.

Protocol on stdin/stdout, one line each way, so a test can await a line
instead of sleeping:
    (startup)                    -> READY
    set ID TABLE ADDR V [V ...]  -> OK          TABLE is co, di, hr or ir
    get ID TABLE ADDR COUNT      -> VALUES V ...
    mode ID normal|mute|badcrc|noise -> OK
                                 answers for device ID: as usual, none at all
                                 (a slave that stopped answering), with a
                                 corrupted CRC, or with random bytes
    mode ID slow MS              -> OK
                                 answers MS milliseconds late (serial only):
                                 a slow slave, whose late frame lands on the
                                 line while the master asks someone else
    quit                         -> (exits)
Anything else answers ERR <reason>.
"""
import argparse
import asyncio
import os
import sys

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

REG_COUNT = 200
# The function code that selects each table in the datastore.
TABLE_FC = {"co": 1, "di": 2, "hr": 3, "ir": 4}
# How each device id answers; see "mode" above.
MODES = {}
# Delay of each device in "slow" mode, seconds.
DELAYS = {}
SERIAL = True
# A second descriptor on the serial port, for late answers (serial only).
LATE_FD = None


def trace_packet(sending, packet):
    """Rewrites outgoing frames of devices whose mode is not normal."""
    if not sending or not packet:
        return packet
    dev_id = packet[0] if SERIAL else (packet[6] if len(packet) > 6 else 0)
    mode = MODES.get(dev_id, "normal")
    if mode == "mute":
        return b""
    if mode == "badcrc":
        return packet[:-1] + bytes([packet[-1] ^ 0xFF])
    if mode == "noise":
        return os.urandom(len(packet))
    if mode == "slow" and LATE_FD is not None:
        # Swallow the answer now, write it to the line later by hand.
        asyncio.get_running_loop().call_later(
            DELAYS.get(dev_id, 0.5), os.write, LATE_FD, bytes(packet)
        )
        return b""
    return packet


def device(dev_id):
    """A device with four separate, zeroed tables."""

    def regs():
        return [SimData(0, count=REG_COUNT, values=0, datatype=DataType.REGISTERS)]

    def bits():
        return [SimData(0, count=REG_COUNT, values=0, datatype=DataType.BITS)]

    return SimDevice(
        id=dev_id,
        simdata=(bits(), bits(), regs(), regs()),
        use_bit_addressing=True,
    )


async def handle(server, line):
    parts = line.split()
    if not parts:
        return None
    if parts[0] == "quit":
        raise SystemExit(0)
    if parts[0] == "mode" and len(parts) == 3:
        MODES[int(parts[1])] = parts[2]
        return "OK"
    if parts[0] == "mode" and len(parts) == 4 and parts[2] == "slow":
        if LATE_FD is None:
            return "ERR slow needs a serial port"
        DELAYS[int(parts[1])] = int(parts[3]) / 1000
        MODES[int(parts[1])] = "slow"
        return "OK"
    if parts[0] not in ("set", "get") or len(parts) < 5:
        return f"ERR bad command {line!r}"
    dev_id, table, addr = int(parts[1]), parts[2], int(parts[3])
    fc = TABLE_FC.get(table)
    if fc is None:
        return f"ERR bad table {table}"
    if parts[0] == "set":
        values = [int(v, 0) for v in parts[4:]]
        if table in ("co", "di"):
            values = [bool(v) for v in values]
        await server.async_setValues(dev_id, fc, addr, values)
        return "OK"
    values = await server.async_getValues(dev_id, fc, addr, int(parts[4]))
    return "VALUES " + " ".join(str(int(v)) for v in values)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial")
    ap.add_argument("--tcp-port", type=int)
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--ids", default="1")
    args = ap.parse_args()
    devices = [device(int(i)) for i in args.ids.split(",")]
    global SERIAL, LATE_FD
    SERIAL = bool(args.serial)
    if args.serial:
        LATE_FD = os.open(args.serial, os.O_WRONLY | os.O_NOCTTY)
        server = ModbusSerialServer(
            devices,
            port=args.serial,
            baudrate=args.baud,
            timeout=0.05,
            trace_packet=trace_packet,
        )
    else:
        server = ModbusTcpServer(
            devices, address=("127.0.0.1", args.tcp_port), trace_packet=trace_packet
        )
    await server.serve_forever(background=True)
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        try:
            reply = await handle(server, line)
        except SystemExit:
            break
        except Exception as exc:  # report, keep serving
            reply = f"ERR {exc!r}"
        if reply:
            print(reply, flush=True)
    await server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

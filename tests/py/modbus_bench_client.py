#!/usr/bin/env python3
"""pymodbus's own client polling a server as fast as it can, for the bench.

usage: modbus_bench_client.py PORT REGISTERS SECONDS
Reads REGISTERS holding registers from device 1 back to back for SECONDS
(after a short warm-up) and prints "RATE <transactions per second> ERRORS <n>".
"""
import sys
import time

from pymodbus.client import ModbusSerialClient


def main():
    port, count, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    client = ModbusSerialClient(port=port, baudrate=115200, timeout=1, retries=0)
    if not client.connect():
        print("ERR cannot open", port, flush=True)
        sys.exit(1)
    for _ in range(5):
        client.read_holding_registers(0, count=count, device_id=1)
    done = errors = 0
    start = time.perf_counter()
    while time.perf_counter() - start < secs:
        r = client.read_holding_registers(0, count=count, device_id=1)
        if r.isError():
            errors += 1
        done += 1
    elapsed = time.perf_counter() - start
    client.close()
    print(f"RATE {done / elapsed:.1f} ERRORS {errors}", flush=True)


if __name__ == "__main__":
    main()

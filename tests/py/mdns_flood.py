#!/usr/bin/env python3
"""Floods a LAN with forged Streembit announcements (DNS-SD over mDNS),
built and framed by python-zeroconf, a third party's mDNS stack.

Usage: mdns_flood.py <own ip> <fake count> <malformed count> <fake ip>

Each fake agent has a real Ed25519 key (so it passes the key check and
reaches the agent's intake), the network "public", and the address
<fake ip>:7470, where nothing listens. The malformed ones carry a key
that is not one. Sent as unsolicited responses to 224.0.0.251:5353, a
few services per packet. Prints "sent <n> packets" when done.
"""

import socket
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from zeroconf import DNSAddress, DNSOutgoing, DNSPointer, DNSService, DNSText, const

SERVICE = "_streembit._udp.local."
PER_PACKET = 4


def txt(pairs):
    out = b""
    for k, v in pairs:
        item = f"{k}={v}".encode()
        out += bytes([len(item)]) + item
    return out


def main():
    own_ip, count, malformed, fake_ip = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(own_ip))
    sock.bind((own_ip, 0))
    unique = const._CLASS_IN | const._CLASS_UNIQUE
    packets = 0
    out = None
    for i in range(count + malformed):
        if i % PER_PACKET == 0:
            if out is not None:
                for p in out.packets():
                    sock.sendto(p, ("224.0.0.251", 5353))
                    packets += 1
                    # Paced (2 ms) so the receivers' socket buffers, not
                    # the sender, are what the flood tests.
                    time.sleep(0.002)
            out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
        name = f"streembit-fake{i:05d}.{SERVICE}"
        host = f"fake{i:05d}.local."
        if i < count:
            key = Ed25519PrivateKey.generate().public_key().public_bytes(
                Encoding.Raw, PublicFormat.Raw
            ).hex()
        else:
            key = "not-a-key-%05d" % i
        out.add_answer_at_time(DNSPointer(SERVICE, const._TYPE_PTR, const._CLASS_IN, 4500, name), 0)
        out.add_answer_at_time(DNSService(name, const._TYPE_SRV, unique, 120, 0, 0, 7470, host), 0)
        out.add_answer_at_time(
            DNSText(name, const._TYPE_TXT, unique, 4500, txt([("v", "1"), ("k", key), ("n", "public")])), 0
        )
        out.add_answer_at_time(DNSAddress(host, const._TYPE_A, unique, 120, socket.inet_aton(fake_ip)), 0)
    if out is not None:
        for p in out.packets():
            sock.sendto(p, ("224.0.0.251", 5353))
            packets += 1
    print(f"sent {packets} packets", flush=True)


if __name__ == "__main__":
    main()

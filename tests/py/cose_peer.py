#!/usr/bin/env python3
"""A third-party COSE peer for Streembit envelopes, written only against
docs/wire.md and the pycose library: no code of ours.

  cose_peer.py verify --pubkey HEX [--network ID] [--to NODEID_HEX] < envelope
      exit 0 and print the headers as JSON when the envelope verifies,
      exit 1 with the reason otherwise.
  cose_peer.py sign [--kind K] [--network ID] [--to NODEID_HEX] [--flip N] [--age-ms MS]
      print JSON {"pubkey": hex, "envelope": hex} for a fresh key.
"""
import argparse
import json
import os
import sys
import time

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage, Sign1Message

LABEL_NETWORK = -65537
LABEL_KIND = -65538
LABEL_TIMESTAMP = -65539
LABEL_NONCE = -65540
BROADCAST_AAD = b"streembit:anyone"
BROADCAST_KINDS = {"peer_record", "device_record", "reading", "note"}


def header(phdr, label):
    for k, v in phdr.items():
        ident = k if isinstance(k, int) else getattr(k, "identifier", None)
        if ident == label:
            return v
    raise ValueError(f"missing header {label}")


def verify(args):
    data = sys.stdin.buffer.read()
    msg = CoseMessage.decode(data)
    if not isinstance(msg, Sign1Message):
        return fail("not a COSE_Sign1")
    kind = header(msg.phdr, LABEL_KIND)
    network = header(msg.phdr, LABEL_NETWORK)
    if msg.phdr.get(Algorithm) not in (EdDSA, EdDSA.identifier):
        return fail(f"alg is {msg.phdr.get(Algorithm)!r}, not EdDSA")
    kid = msg.phdr.get(KID)
    pub = bytes.fromhex(args.pubkey)
    if kid != pub:
        return fail("kid is not the expected public key")
    if network != args.network:
        return fail(f"wrong network {network!r}")
    if kind in BROADCAST_KINDS:
        msg.external_aad = BROADCAST_AAD
    elif args.to:
        msg.external_aad = bytes.fromhex(args.to)
    else:
        return fail(f"kind {kind} is point-to-point: pass --to")
    msg.key = OKPKey(crv=Ed25519, x=pub)
    try:
        ok = msg.verify_signature()
    except Exception as e:  # pycose raises on malformed signatures
        return fail(f"signature check raised {e!r}")
    if not ok:
        return fail("bad signature")
    print(json.dumps({
        "kind": kind,
        "network": network,
        "timestamp_ms": header(msg.phdr, LABEL_TIMESTAMP),
        "nonce": header(msg.phdr, LABEL_NONCE),
        "payload": cbor2.loads(msg.payload),
    }))
    return 0


def sign(args):
    sk = Ed25519PrivateKey.generate()
    d = sk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                         serialization.NoEncryption())
    x = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    msg = Sign1Message(
        phdr={
            Algorithm: EdDSA,
            KID: x,
            LABEL_NETWORK: args.network,
            LABEL_KIND: args.kind,
            LABEL_TIMESTAMP: int(time.time() * 1000) - args.age_ms,
            LABEL_NONCE: int.from_bytes(os.urandom(8), "big"),
        },
        payload=cbor2.dumps({"from": "pycose", "value": 42}),
    )
    msg.external_aad = bytes.fromhex(args.to) if args.to else BROADCAST_AAD
    msg.key = OKPKey(crv=Ed25519, d=d, x=x)
    env = bytearray(msg.encode())
    if args.flip is not None:
        env[args.flip % len(env)] ^= 0x01
    print(json.dumps({"pubkey": x.hex(), "envelope": bytes(env).hex()}))
    return 0


def fail(reason):
    print(reason, file=sys.stderr)
    return 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--pubkey", required=True)
    v.add_argument("--network", default="public")
    v.add_argument("--to")
    s = sub.add_parser("sign")
    s.add_argument("--kind", default="reading")
    s.add_argument("--network", default="public")
    s.add_argument("--to")
    s.add_argument("--flip", type=int)
    s.add_argument("--age-ms", type=int, default=0)
    args = p.parse_args()
    try:
        return verify(args) if args.cmd == "verify" else sign(args)
    except Exception as e:  # malformed input is a refusal, not a crash
        return fail(f"refused: {e!r}")


if __name__ == "__main__":
    sys.exit(main())

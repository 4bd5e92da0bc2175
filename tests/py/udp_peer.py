"""One UDP socket driven line by line over stdin, for the NAT lab tests
(tests/tests/natlab.rs), run inside a lab namespace.

Usage: udp_peer.py BIND_IP PORT

Prints "ready IP PORT" once bound, then answers one line per command:
  send IP PORT TEXT  -> sends TEXT (no spaces) to IP:PORT; prints "sent"
  recv SECONDS       -> prints "got IP PORT TEXT" for the next datagram,
                        or "timeout" if none arrives within SECONDS
Every command gets exactly one answer (errors as "error ..."), so the
test reading them never waits longer than the timeouts it asked for.
"""

import socket
import sys


def main():
    ip, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    print("ready", *s.getsockname(), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        try:
            if cmd[0] == "send" and len(cmd) == 4:
                s.sendto(cmd[3].encode(), (cmd[1], int(cmd[2])))
                print("sent", flush=True)
            elif cmd[0] == "recv" and len(cmd) == 2:
                s.settimeout(float(cmd[1]))
                try:
                    data, (src, sport) = s.recvfrom(65535)
                    print("got", src, sport, data.decode(), flush=True)
                except socket.timeout:
                    print("timeout", flush=True)
            else:
                print("error bad command:", line.strip(), flush=True)
        except OSError as e:
            print("error", e, flush=True)


main()

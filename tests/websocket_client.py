#!/usr/bin/env python3
"""A WebSocket client other than Prescale's own (python3-websocket, "websocket-client") talks to
`prescale serve echo`'s GET /ws at the URL given, e.g. through the gateway: text, a binary
message larger than any buffer on the way, a ping, then the close handshake. Prints "ok", or
what went wrong (and exits 1)."""
import sys

import websocket  # Debian: python3-websocket


def main(url):
    ws = websocket.create_connection(url, timeout=10)
    ws.send("hello, gateway")
    got = ws.recv()
    if got != "hello, gateway":
        sys.exit("text echo: got %r" % (got,))
    big = bytes((i * 7) % 251 for i in range(300 * 1024))
    ws.send_binary(big)
    got = ws.recv()
    if got != big:
        sys.exit("binary echo: got %d bytes, expected %d" % (len(got), len(big)))
    ws.ping(b"beat")
    opcode, frame = ws.recv_data_frame(control_frame=True)
    if opcode != websocket.ABNF.OPCODE_PONG or frame.data != b"beat":
        sys.exit("ping: got opcode %d with %r" % (opcode, frame.data))
    ws.send_close(status=websocket.STATUS_NORMAL, reason=b"done")
    opcode, frame = ws.recv_data_frame(control_frame=True)
    if opcode != websocket.ABNF.OPCODE_CLOSE or frame.data[:2] != b"\x03\xe8":
        sys.exit("close: got opcode %d with %r" % (opcode, frame.data))
    ws.shutdown()
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])

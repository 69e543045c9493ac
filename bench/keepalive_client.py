"""A deterministic load for bench/callgrind.sh: exactly N requests for /index.html over C
keep-alive connections, DEPTH pipelined per write; each response is read whole (by
Content-Length) before the next batch. Waits for the server to accept connections first.

    python3 bench/keepalive_client.py PORT N C DEPTH [HEADER]

HEADER, e.g. "Authorization: Basic YmVuY2g6YmVuY2g=", is sent with every request.
"""
import socket
import sys
import time


def connect(port, attempts=200):
    for _ in range(attempts):
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            time.sleep(0.05)  # the server is still starting (under valgrind, slowly)
    raise SystemExit(f"nothing listens on port {port}")


def read_responses(sock, count, buf=b""):
    while count:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1").lower()
            length = int(head.split("content-length:")[1].split("\r\n")[0])
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                count -= 1
                continue
        data = sock.recv(1 << 20)
        if not data:
            raise SystemExit("the server closed the connection")
        buf += data
    return buf


def main():
    port, total, conns, depth = (int(a) for a in sys.argv[1:5])
    header = sys.argv[5].encode() + b"\r\n" if len(sys.argv) > 5 and sys.argv[5] else b""
    request = b"GET /index.html HTTP/1.1\r\nHost: bench\r\n" + header + b"\r\n"
    request *= depth
    socks = [connect(port) for _ in range(conns)]
    rounds = total // (conns * depth)
    for _ in range(rounds):
        for sock in socks:
            sock.sendall(request)
        for sock in socks:
            read_responses(sock, depth)
    print(rounds * conns * depth)


main()

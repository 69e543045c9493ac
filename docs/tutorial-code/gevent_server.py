# Reproduces, for the demonstrations of the guided tour (docs/zh, docs/en), the core of the
# tutorials' gevent server: 000 "gevent 版 Web 服务器", 001 "使用协程来实现并发 Web Server",
# 002 "协程实现". It needs gevent (pip install gevent). Bugs included, as in thread_server.py:
# one recv(1024) as the request, no Content-Length, no timeouts, no root check. And its limit:
# every greenlet runs on one OS thread, so the server uses one core at most.
#
#   python3 gevent_server.py [ROOT] [PORT]        ROOT: ./html, PORT: 7890 by default
from gevent import monkey

monkey.patch_all()

import re  # noqa: E402 (after patch_all, as in the tutorial)
import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402


def handle_request(new_socket, root):
    recv_msg = new_socket.recv(1024).decode("utf-8", "replace")
    if recv_msg == "":
        new_socket.close()
        return
    ret = re.match(r"[^/]+(/[^ ]*)", recv_msg.splitlines()[0])
    file_name = ret.group(1) if ret else "/"
    if file_name == "/":
        file_name = "/index.html"
    try:
        with open(root + file_name, "rb") as fp:
            html_content = fp.read()
    except OSError:
        new_socket.send(b"HTTP/1.1 404 NOT FOUND\r\n\r\n<h1>----file not found----</h1>")
    else:
        new_socket.send(b"HTTP/1.1 200 OK\r\n\r\n")
        new_socket.send(html_content)
    new_socket.close()


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "./html"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 7890
    tcp_server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp_server_socket.bind(("", port))
    tcp_server_socket.listen(128)
    while True:
        new_socket, client_addr = tcp_server_socket.accept()
        gevent.spawn(handle_request, new_socket, root)


if __name__ == "__main__":
    main()

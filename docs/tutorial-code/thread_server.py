# Reproduces, for the demonstrations of the guided tour (docs/zh, docs/en), the core of the
# tutorials' thread-per-connection server: 000 "多线程版 Web 服务器", 001 "使用线程来实现并发
# Web Server", 004 "多线程". Bugs included, on purpose: one recv(1024) taken as the request, no
# Content-Length, no timeouts (a silent client holds its thread forever), no check that the
# path stays inside the root.
#
#   python3 thread_server.py [ROOT] [PORT]        ROOT: ./html, PORT: 7890 by default
import re
import socket
import sys
import threading


def handle_request(new_socket, root):
    recv_msg = new_socket.recv(1024).decode("utf-8", "replace")
    if recv_msg == "":
        new_socket.close()
        return
    recv_lines = recv_msg.splitlines()
    ret = re.match(r"[^/]+(/[^ ]*)", recv_lines[0])
    file_name = "/index.html"
    if ret:
        file_name = ret.group(1)
        if file_name == "/":
            file_name = "/index.html"
    try:
        fp = open(root + file_name, "rb")
    except OSError:
        response_msg = "HTTP/1.1 404 NOT FOUND\r\n\r\n<h1>----file not found----</h1>"
        new_socket.send(response_msg.encode("utf-8"))
    else:
        html_content = fp.read()
        fp.close()
        new_socket.send("HTTP/1.1 200 OK\r\n\r\n".encode("utf-8"))
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
        t = threading.Thread(target=handle_request, args=(new_socket, root))
        t.start()


if __name__ == "__main__":
    main()

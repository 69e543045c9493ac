# Reproduces, for the demonstrations of the guided tour (docs/zh, docs/en), the tutorials' epoll
# server: 002 "epoll原理" and 004 "epoll： 单进程、单线程、高并发". Bugs included, on purpose:
# `elif event == select.EPOLLIN` ignores an event that carries EPOLLHUP or EPOLLERR too, so a
# connection reset by its client stays ready and the loop spins a core; epl.unregister(fd)
# comes after close(), when the descriptor no longer exists; one recv(1024) is a request; no
# timeouts, no root check, "file not found" without Content-Length.
#
#   python3 epoll_server.py [ROOT] [PORT]        ROOT: ./html, PORT: 7890 by default
import re
import select
import socket
import sys


def service_client(new_socket, request, root):
    request_lines = request.splitlines()
    file_name = ""
    res = re.match(r"[^/]+(/[^ ]*)", request_lines[0])
    if res:
        file_name = res.group(1)
        if file_name == "/":
            file_name = "/index.html"
    try:
        f = open(root + file_name, "rb")
    except OSError:
        response = "HTTP/1.1 404 NOT FOUND \r\n\r\n-----file not found-----"
        new_socket.send(response.encode("utf-8"))
    else:
        response_body = f.read()
        f.close()
        response_header = "HTTP/1.1 200 OK \r\n"
        response_header += "Content-Length:%d\r\n" % len(response_body)
        response_header += "\r\n"
        new_socket.send(response_header.encode("utf-8") + response_body)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "./html"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 7890
    tcp_server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp_server_socket.bind(("", port))
    tcp_server_socket.listen(128)
    tcp_server_socket.setblocking(False)
    epl = select.epoll()
    epl.register(tcp_server_socket.fileno(), select.EPOLLIN)
    fd_event_dict = dict()
    while True:
        fd_event_list = epl.poll()
        for fd, event in fd_event_list:
            if fd == tcp_server_socket.fileno():
                new_socket, client_addr = tcp_server_socket.accept()
                epl.register(new_socket.fileno(), select.EPOLLIN)
                fd_event_dict[new_socket.fileno()] = new_socket
            elif event == select.EPOLLIN:
                recv_data = fd_event_dict[fd].recv(1024).decode("utf-8")
                if recv_data:
                    service_client(fd_event_dict[fd], recv_data, root)
                else:
                    fd_event_dict[fd].close()
                    epl.unregister(fd)
                    del fd_event_dict[fd]


if __name__ == "__main__":
    main()

# Reproduces, for the demonstrations of the guided tour (docs/zh, docs/en), the core of the
# tutorials' process-per-connection server: 001 "使用子进程来实现并发 Web Server", 002
# "多进程实现", 004 "多进程". Bugs included, on purpose: one recv(1024) taken as the request,
# no Content-Length, "file not found" without a status of its own, no timeouts, no check that
# the path stays inside the root, and children that are never joined.
#
#   python3 process_server.py [ROOT] [PORT] [--forget-close]
#
# ROOT defaults to ./html as in the tutorials, PORT to 7890. --forget-close leaves out the
# parent's new_socket.close(), the line tutorial 000 warns about.
import multiprocessing
import re
import socket
import sys


def handle_request(new_socket, root):
    recv_msg = new_socket.recv(1024).decode("utf-8")
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
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = args[0] if args else "./html"
    port = int(args[1]) if len(args) > 1 else 7890
    forget_close = "--forget-close" in sys.argv
    # The tutorials rely on fork (the child copies the parent's socket); Python 3.14 made
    # another start method the default on Linux.
    multiprocessing.set_start_method("fork")
    tcp_server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp_server_socket.bind(("", port))
    tcp_server_socket.listen(128)
    while True:
        new_socket, client_addr = tcp_server_socket.accept()
        sub_p = multiprocessing.Process(target=handle_request, args=(new_socket, root))
        sub_p.start()
        if not forget_close:
            new_socket.close()


if __name__ == "__main__":
    main()

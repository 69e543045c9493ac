# Reproduces, for the demonstrations of the guided tour (docs/zh, docs/en), tutorial 000's
# "单进程・单线程・非阻塞・长连接实现 Web 服务器" (001 §5, 002 and 003 have the same loop, which
# serves files). Bugs included, on purpose: the loop never sleeps (a whole core while idle);
# request_handler(conn, data) answers `conn`, the socket accepted last, not `c`, the one that
# sent the request; sockets are removed from the list while it is being iterated; one recv(1024)
# is taken as a request (pipelined requests get one answer).
#
#   python3 nonblocking_server.py [PORT]        PORT: 7890 by default (the tutorial: 8000)
import socket
import sys


def request_handler(conn, request):
    if not request:
        return
    response_body = '<h1>hello world</h1>'
    response_header = 'HTTP/1.1 200 OK\r\n'
    response_header += 'Content-Type: text/html; charset=utf-8\r\n'
    response_header += f'Content-Length: {len(response_body)}\r\n'
    response_header += '\r\n'
    conn.send((response_header + response_body).encode())


if __name__ == '__main__':
    PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7890
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('', PORT))
        s.listen(128)
        s.setblocking(False)
        conn_list = list()
        while True:
            try:
                conn, addr = s.accept()
            except OSError:  # the tutorial: a bare except
                pass
            else:
                conn.setblocking(False)
                conn_list.append(conn)
            for c in conn_list:
                try:
                    data = c.recv(1024)
                except OSError:
                    pass
                else:
                    if data:
                        request_handler(conn, data)
                    else:
                        c.close()
                        conn_list.remove(c)

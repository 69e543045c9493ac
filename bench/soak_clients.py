#!/usr/bin/env python3
"""Client loops for bench/soak.sh: the kinds of load wrk cannot make.

    soak_clients.py MODE --port P --site DIR --duration S --stats FILE [options]

MODE is one of
  pipeline  keep-alive connections sending 16 GETs per write, checking every response
  range     Range requests on /1m.bin: single, suffix, open-ended, multi (multipart) and
            unsatisfiable, each checked byte for byte against the file
  slow      slow clients, a byte at a time: heads that complete (expect 200), heads that stop
            half way and heads that trickle forever (the server must close them within the
            header timeout), keep-alive connections left idle (closed within the idle timeout)
  reset     download /64m.bin, read a little, close with SO_LINGER 0 (RST mid-response)
  stall     request /64m.bin and never read; after a while drain to see whether the server
            gave up on us (the send timeout) or kept the response pending

Every loop stops at --duration. With --hold, `slow` and `stall` then open a last set of
misbehaving connections and keep them open without closing until SIGTERM (or --max-hold),
so that soak.sh can check that the server's own timeouts release them. The stats (JSON) are
written to --stats when the process ends. Python 3.11 standard library only; 127.0.0.1 only.
"""

import argparse
import contextlib
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
INDEX = "/index.html"
MEDIUM = "/1m.bin"
BIG = "/64m.bin"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.samples = {}  # name -> list of floats (seconds)
        self.notes = []  # first few error messages

    def add(self, name, n=1):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def time(self, name, value):
        with self.lock:
            self.samples.setdefault(name, []).append(value)

    def error(self, kind, message):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if len(self.notes) < 20:
                self.notes.append(f"{kind}: {message}")

    def dump(self):
        with self.lock:
            timings = {
                name: {"n": len(v), "min": round(min(v), 2), "max": round(max(v), 2),
                       "mean": round(sum(v) / len(v), 2)}
                for name, v in self.samples.items() if v
            }
            return {"counts": dict(sorted(self.counts.items())), "timings": timings,
                    "notes": list(self.notes)}


class Bad(Exception):
    """The server answered something wrong (a correctness error, not a network error)."""


def connect(port, timeout=30.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


@contextlib.contextmanager
def session(port):
    """A connection and a buffered reader on it; both closed at the end (a socket with a
    live makefile() object is not really closed until that object is)."""
    s = connect(port)
    f = s.makefile("rb", buffering=65536)
    try:
        yield s, f
    finally:
        f.close()
        s.close()


def reset_close(s):
    """Close with SO_LINGER {on, 0}: the kernel sends RST instead of FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def request(path, extra="", method="GET"):
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: soak\r\n{extra}\r\n".encode()


def read_head(f):
    """Status code and lower-cased headers of one response from the buffered reader f."""
    line = f.readline(8192)
    if not line:
        raise EOFError("connection closed before a response")
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise Bad(f"bad status line {line[:80]!r}")
    status = int(parts[1])
    headers = {}
    while True:
        line = f.readline(8192)
        if not line:
            raise EOFError("connection closed inside a response head")
        if line in (b"\r\n", b"\n"):
            return status, headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


def read_exact(f, n):
    data = f.read(n)
    if data is None or len(data) != n:
        raise EOFError(f"body cut short: {0 if data is None else len(data)} of {n} bytes")
    return data


def read_response(f, head_only=False):
    status, headers = read_head(f)
    if "content-length" not in headers:
        raise Bad(f"status {status} without Content-Length")
    length = int(headers["content-length"])
    body = b"" if head_only else read_exact(f, length)
    return status, headers, body


def wait_closed(s, limit):
    """Seconds until the peer closes s (EOF or reset), reading and discarding; None if it is
    still open after `limit` seconds."""
    start = time.monotonic()
    while True:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            return None
        ready, _, _ = select.select([s], [], [], min(left, 1.0))
        if not ready:
            continue
        try:
            data = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        except OSError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start


def net_error(stats, e):
    stats.error("net_error", f"{type(e).__name__}: {e}")


# --- pipelining ---------------------------------------------------------------------------

def pipeline_loop(a, stats, stop, index_body):
    batch = request(INDEX) * 16
    while not stop.is_set():
        try:
            with session(a.port) as (s, f):
                for _ in range(random.randint(5, 50)):
                    if stop.is_set():
                        break
                    s.sendall(batch)
                    for _ in range(16):
                        status, _, body = read_response(f)
                        if status != 200 or body != index_body:
                            raise Bad(f"pipelined GET: status {status}, {len(body)} bytes")
                        stats.add("requests")
                    stats.add("batches")
                stats.add("connections")
        except Bad as e:
            stats.error("bad", str(e))
        except (OSError, EOFError) as e:
            net_error(stats, e)
            time.sleep(0.1)


# --- ranges -------------------------------------------------------------------------------

def parse_content_range(value, size):
    unit, _, rest = value.partition(" ")
    span, _, total = rest.partition("/")
    first, _, last = span.partition("-")
    if unit != "bytes" or int(total) != size:
        raise Bad(f"Content-Range {value!r}")
    return int(first), int(last)


def parse_multipart(body, boundary, data):
    """Check every part of a multipart/byteranges body against data; return the part count."""
    delimiter = b"--" + boundary.encode()
    pos = body.find(delimiter)
    parts = 0
    while True:
        if pos < 0:
            raise Bad("multipart: missing boundary")
        pos += len(delimiter)
        if body[pos:pos + 2] == b"--":
            return parts
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise Bad("multipart: part head not terminated")
        content_range = None
        for line in body[pos:head_end].decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-range":
                content_range = value.strip()
        if content_range is None:
            raise Bad("multipart: part without Content-Range")
        first, last = parse_content_range(content_range, len(data))
        start = head_end + 4
        chunk = body[start:start + last - first + 1]
        if chunk != data[first:last + 1]:
            raise Bad(f"multipart: part {first}-{last} has the wrong bytes")
        parts += 1
        pos = body.find(delimiter, start + len(chunk))


def one_range(s, f, data, stats):
    size = len(data)
    kind = random.choice(["single", "single", "suffix", "open", "multi", "multi", "unsatisfiable"])
    if kind == "single":
        first = random.randrange(size)
        last = min(size - 1, first + random.randint(0, 65535))
        spec, want = f"{first}-{last}", (first, last)
    elif kind == "suffix":
        n = random.randint(1, 100000)
        spec, want = f"-{n}", (size - n, size - 1)
    elif kind == "open":
        first = random.randrange(size - 200000, size)
        spec, want = f"{first}-", (first, size - 1)
    elif kind == "multi":
        starts = sorted(random.sample(range(0, size - 5000, 4096), random.randint(2, 5)))
        spec = ",".join(f"{a}-{a + random.randint(0, 3000)}" for a in starts)
        want = None
    else:
        spec, want = f"{size + 10}-{size + 100}", None
    s.sendall(request(MEDIUM, f"Range: bytes={spec}\r\n"))
    status, headers, body = read_response(f)
    if kind == "unsatisfiable":
        if status != 416 or headers.get("content-range") != f"bytes */{size}":
            raise Bad(f"Range {spec}: status {status}, Content-Range {headers.get('content-range')}")
    elif kind == "multi":
        ctype = headers.get("content-type", "")
        if status != 206 or not ctype.startswith("multipart/byteranges"):
            raise Bad(f"Range {spec}: status {status}, Content-Type {ctype!r}")
        boundary = ctype.split("boundary=", 1)[1].strip('"')
        if parse_multipart(body, boundary, data) < 1:
            raise Bad(f"Range {spec}: no parts")
    else:
        if status != 206:
            raise Bad(f"Range {spec}: status {status}")
        if parse_content_range(headers.get("content-range", ""), size) != want:
            raise Bad(f"Range {spec}: Content-Range {headers.get('content-range')}")
        if body != data[want[0]:want[1] + 1]:
            raise Bad(f"Range {spec}: wrong bytes")
    stats.add(f"range_{kind}")
    stats.add("requests")


def range_loop(a, stats, stop, data):
    while not stop.is_set():
        try:
            with session(a.port) as (s, f):
                for _ in range(random.randint(10, 100)):
                    if stop.is_set():
                        break
                    one_range(s, f, data, stats)
                stats.add("connections")
        except Bad as e:
            stats.error("bad", str(e))
        except (OSError, EOFError) as e:
            net_error(stats, e)
            time.sleep(0.1)


# --- slow clients -------------------------------------------------------------------------

def trickle(s, data, pause, stop=None):
    for i in range(len(data)):
        if stop is not None and stop.is_set():
            return False
        s.sendall(data[i:i + 1])
        time.sleep(pause)
    return True


def slow_complete(a, stats, stop, index_body):
    """A whole head a byte at a time (~1.5 s), then the response must be a normal 200."""
    head = request(INDEX, "Accept: */*\r\nConnection: close\r\n")
    with session(a.port) as (s, f):
        if not trickle(s, head, 0.015, stop):
            return
        status, _, body = read_response(f)
        if status != 200 or body != index_body:
            raise Bad(f"slow head: status {status}, {len(body)} bytes")
        stats.add("slow_complete_ok")
        stats.add("requests")


def open_abandoned(a, kind):
    """A connection the server must time out: `abandon` sends half a head a byte at a time
    and stops, `idle` gets one response and then sits on the keep-alive connection."""
    s = connect(a.port)
    if kind == "abandon":
        trickle(s, request(INDEX)[:random.randint(5, 30)], 0.05)
    else:
        s.sendall(request(INDEX))
        with s.makefile("rb") as f:
            read_response(f)
    return s


def slow_wait_close(a, stats, kind):
    """Open one abandoned connection and wait for the server to close it."""
    limit = a.header_timeout if kind == "abandon" else a.idle_timeout
    opened = time.monotonic()
    s = open_abandoned(a, kind)
    # The header timeout runs from the connect, the idle timeout from the response.
    since = opened if kind == "abandon" else time.monotonic()
    with s:
        took = wait_closed(s, limit + 15)
    if took is not None:
        took = time.monotonic() - since
    if took is None:
        stats.error("bad", f"{kind}: not closed {limit + 15:.0f} s after the head stopped "
                           f"(timeout {limit} s)")
    else:
        stats.time(f"{kind}_closed_after_s", took)
        stats.add(f"{kind}_closed" + ("" if took <= limit + 3 else "_late"))


def slow_forever(a, stats):
    """Slowloris: a byte a second, never finishing; the header timeout must cut it."""
    start = time.monotonic()
    limit = a.header_timeout
    with connect(a.port) as s:
        head = request(INDEX) * 10
        for i in range(len(head)):
            try:
                s.sendall(head[i:i + 1])
            except OSError:
                break
            if wait_closed(s, 1.0) is not None:
                break
            if time.monotonic() - start > limit + 15:
                stats.error("bad", f"trickle: still open {limit + 15:.0f} s after connect "
                                   f"(header timeout {limit} s)")
                return
    took = time.monotonic() - start
    stats.time("trickle_closed_after_s", took)
    stats.add("trickle_closed" + ("" if took <= limit + 3 else "_late"))


def slow_loop(a, stats, stop, kind, index_body):
    while not stop.is_set():
        try:
            if kind == "complete":
                slow_complete(a, stats, stop, index_body)
            elif kind == "trickle":
                slow_forever(a, stats)
            else:
                slow_wait_close(a, stats, kind)
        except Bad as e:
            stats.error("bad", str(e))
        except (OSError, EOFError) as e:
            net_error(stats, e)
            time.sleep(0.1)


# --- resets mid-response ------------------------------------------------------------------

def reset_loop(a, stats, stop):
    while not stop.is_set():
        try:
            s = connect(a.port)
            s.sendall(request(BIG))
            want = random.randint(1024, 4 << 20)
            got = 0
            head = b""
            while got < want:
                chunk = s.recv(min(65536, want - got))
                if not chunk:
                    raise EOFError(f"closed after {got} bytes")
                if not head:
                    head = chunk[:12]
                got += len(chunk)
            if not head.startswith(b"HTTP/1.1 200"):
                raise Bad(f"GET {BIG}: {head!r}")
            reset_close(s)
            stats.add("resets")
            stats.add("reset_bytes_read", got)
        except Bad as e:
            stats.error("bad", str(e))
        except (OSError, EOFError) as e:
            net_error(stats, e)
        time.sleep(random.uniform(0.0, 0.2))


# --- clients that stop reading ------------------------------------------------------------

def open_stalled(a):
    s = connect(a.port, rcvbuf=16384)
    s.sendall(request(BIG))
    return s


BIG_TOTAL = None  # bytes of a full response to GET /64m.bin (head + body), set in main


def drain(s, budget):
    """Read what is left; return ('dropped', bytes) if the server closed before the whole
    response (it gave up on us: the send timeout), ('full', bytes) if the whole response came
    (it kept waiting for us), ('pending', bytes) if neither happened within budget."""
    s.settimeout(1.0)
    got = 0
    end = time.monotonic() + budget
    while time.monotonic() < end:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            return "dropped", got
        if not chunk:
            return ("full" if got >= BIG_TOTAL else "dropped"), got
        got += len(chunk)
        if got >= BIG_TOTAL:  # the whole response came: the server kept it pending for us
            return "full", got
    return "pending", got


def stall_loop(a, stats, stop):
    hold = 2 * a.send_timeout + 2
    while not stop.is_set():
        try:
            s = open_stalled(a)
            stop.wait(hold)
            outcome, got = drain(s, 10.0)
            reset_close(s)
            stats.add(f"stall_{outcome}")
            if outcome == "dropped":
                stats.add("stall_dropped_bytes", got)
        except (OSError, EOFError) as e:
            net_error(stats, e)
            time.sleep(0.5)


# --- the final hold -----------------------------------------------------------------------

def hold_phase(a, stats, terminated):
    """Open the last misbehaving connections and keep them open until SIGTERM; record when
    (and whether) the server closed them."""
    kinds = ["abandon", "abandon", "trickle", "idle", "idle"] if a.mode == "slow" else ["stall"] * 3
    held = []
    for kind in kinds:
        opened = time.monotonic()
        try:
            if kind == "stall":
                s = open_stalled(a)
            elif kind == "trickle":
                s = connect(a.port)
                trickle(s, b"GET /index.html HTTP/1.1\r\n", 0.02)
            else:
                s = open_abandoned(a, kind)
            if kind == "idle":
                opened = time.monotonic()  # the idle timeout runs from the response
            held.append((kind, s, opened))
        except (OSError, EOFError, Bad) as e:
            stats.error("hold_error", f"{kind}: {e}")
    with open(a.stats + ".holding", "w") as f:  # soak.sh counts descriptors after this
        f.write(f"{len(held)}\n")
    closed = {}
    deadline = time.monotonic() + a.max_hold
    trickle_next = time.monotonic()
    while not terminated.is_set() and time.monotonic() < deadline:
        now = time.monotonic()
        for kind, s, opened in held:
            if kind == "stall" or s in closed:
                continue
            if kind == "trickle" and now >= trickle_next:
                try:
                    s.sendall(b"X")
                except OSError:
                    closed[s] = now - opened
                    continue
            if wait_closed(s, 0.001) is not None:
                closed[s] = time.monotonic() - opened
        if now >= trickle_next:
            trickle_next = now + 1.0
        terminated.wait(0.2)
    result = []
    for kind, s, opened in held:
        if kind == "stall":
            outcome, got = drain(s, 3.0)
            result.append({"kind": kind, "outcome": outcome, "held_s": round(time.monotonic() - opened, 1),
                           "bytes_after_hold": got})
        else:
            took = closed.get(s)
            result.append({"kind": kind, "closed_by_server_after_s": None if took is None else round(took, 1)})
        reset_close(s)
    return result


def main():
    global BIG_TOTAL
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["pipeline", "range", "slow", "reset", "stall"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--header-timeout", type=float, default=5)
    p.add_argument("--idle-timeout", type=float, default=10)
    p.add_argument("--send-timeout", type=float, default=5)
    p.add_argument("--hold", action="store_true", help="slow/stall: hold connections at the end")
    p.add_argument("--max-hold", type=float, default=120)
    a = p.parse_args()

    index_body = open(f"{a.site}/index.html", "rb").read()
    medium = open(f"{a.site}/1m.bin", "rb").read()
    big_size = os.path.getsize(f"{a.site}/64m.bin")
    BIG_TOTAL = big_size  # the head comes on top; reaching the body size is enough for "full"

    stats = Stats()
    stop = threading.Event()
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), terminated.set()))
    signal.signal(signal.SIGINT, lambda *_: (stop.set(), terminated.set()))

    targets = []
    for i in range(a.concurrency):
        if a.mode == "pipeline":
            targets.append((pipeline_loop, (a, stats, stop, index_body)))
        elif a.mode == "range":
            targets.append((range_loop, (a, stats, stop, medium)))
        elif a.mode == "slow":
            kind = ["complete", "abandon", "trickle", "idle"][i % 4]
            targets.append((slow_loop, (a, stats, stop, kind, index_body)))
        elif a.mode == "reset":
            targets.append((reset_loop, (a, stats, stop)))
        else:
            targets.append((stall_loop, (a, stats, stop)))
    threads = [threading.Thread(target=fn, args=args, daemon=True) for fn, args in targets]
    started = time.monotonic()
    for t in threads:
        t.start()
    stop.wait(a.duration)
    stop.set()
    # Loops end within a few seconds of the deadline (a slow wait is bounded by its timeout).
    for t in threads:
        t.join(timeout=max(a.idle_timeout, a.header_timeout, 2 * a.send_timeout) + 30)
    stats.add("loop_seconds", round(time.monotonic() - started))
    out = stats.dump()
    out["mode"] = a.mode
    out["threads_still_running"] = sum(t.is_alive() for t in threads)
    if a.hold and a.mode in ("slow", "stall") and not terminated.is_set():
        out["hold"] = hold_phase(a, stats, terminated)
        out["counts"] = stats.dump()["counts"]
        out["notes"] = stats.dump()["notes"]
    with open(a.stats, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

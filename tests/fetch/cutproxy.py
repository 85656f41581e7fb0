#!/usr/bin/env python3
"""TCP proxy for fault injection in the fetch tests.

cutproxy.py LISTEN_PORT UPSTREAM_PORT MODE STATS
MODE "cut:N"   the first connection that carries more than N bytes towards the
               client is cut after exactly N bytes; later ones pass untouched.
MODE "stall:N" the first connection over N bytes stops after N bytes and hangs.
MODE "busy:S"  the first connection is answered "503, Retry-After: S" and closed.
STATS receives the total number of bytes sent towards clients (rewritten as it grows).
"""
import socket, sys, threading

lport, uport, mode, stats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
kind, arg = mode.split(":")
arg = int(arg)
lock = threading.Lock()
state = {"total": 0, "fired": False}

def count(n):
    with lock:
        state["total"] += n
        with open(stats, "w") as f:
            f.write("%d\n" % state["total"])

def pump_up(c, u):
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            u.sendall(b)
    except OSError:
        pass
    try:
        u.shutdown(socket.SHUT_WR)
    except OSError:
        pass

def handle(c):
    if kind == "busy":
        req = c.recv(65536)
        with lock:
            # Connections that send nothing (port probes) do not count.
            first = bool(req) and not state["fired"]
            if first:
                state["fired"] = True
        if not first:
            u = socket.create_connection(("127.0.0.1", uport))
            u.sendall(req)
            return relay(c, u)
        c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % arg)
        c.close()
        return
    u = socket.create_connection(("127.0.0.1", uport))
    relay(c, u)

def relay(c, u):
    threading.Thread(target=pump_up, args=(c, u), daemon=True).start()
    sent = 0
    try:
        while True:
            b = u.recv(65536)
            if not b:
                break
            with lock:
                cut = kind == "cut" and not state["fired"] and sent + len(b) > arg
                if cut:
                    state["fired"] = True
            if cut or (kind == "stall" and not state["fired"] and sent + len(b) > arg):
                part = b[:arg - sent]
                c.sendall(part)
                count(len(part))
                if kind == "stall":
                    state["fired"] = True
                    while c.recv(65536):  # hold the connection until the client goes
                        pass
                break
            c.sendall(b)
            sent += len(b)
            count(len(b))
    except OSError:
        pass
    for s in (c, u):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", lport))
srv.listen(16)
open(stats, "w").write("0\n")
while True:
    conn, _ = srv.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()

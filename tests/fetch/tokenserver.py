#!/usr/bin/env python3
"""A minimal Docker registry token issuer for the tests (HTTPS, RS256 JWT with x5c).

tokenserver.py PORT TLS_CERT TLS_KEY SIGN_CERT SIGN_KEY USER PASS LOG
Anonymous callers get pull on any repository except demo/private*; callers with
the right Basic credentials get pull and push everywhere.  Each request is
logged as "<user or -> <scope>" to LOG.
"""
import base64, http.server, json, ssl, subprocess, sys, time, urllib.parse, uuid

port, tls_cert, tls_key, sign_cert, sign_key, user, pw, logf = sys.argv[1:9]

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

with open(sign_cert) as f:
    pem = f.read()
der_b64 = "".join(l for l in pem.splitlines() if "-----" not in l)

def sign(claims):
    head = b64u(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": [der_b64]}).encode())
    body = b64u(json.dumps(claims).encode())
    msg = (head + "." + body).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", sign_key], input=msg,
                         capture_output=True, check=True).stdout
    return head + "." + body + "." + b64u(sig)

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path != "/token":
            self.send_error(404); return
        q = urllib.parse.parse_qs(u.query)
        who = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                name, _, pwd = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                name, pwd = "", ""
            if name != user or pwd != pw:
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"details":"bad credentials"}')
                return
            who = name
        access = []
        for scope in q.get("scope", []):
            parts = scope.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                continue
            name, actions = parts[1], parts[2].split(",")
            if who is None:
                if name.startswith("demo/private"):
                    continue
                actions = [a for a in actions if a == "pull"]
            access.append({"type": "repository", "name": name, "actions": actions})
        with open(logf, "a") as f:
            f.write("%s %s\n" % (who or "-", " ".join(q.get("scope", [])) or "(none)"))
        now = int(time.time())
        tok = sign({"iss": "agfetch-test-issuer", "sub": who or "", "aud": q.get("service", [""])[0],
                    "exp": now + 600, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access})
        body = json.dumps({"token": tok, "access_token": tok, "expires_in": 600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(tls_cert, tls_key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()

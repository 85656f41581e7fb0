# Shared helpers for the fetch tests (sourced).  Every server a test starts is
# recorded and killed by the EXIT trap, and the scratch directory removed.
set -eu

: "${FETCH_TOOL:?FETCH_TOOL must name the fetch-tool binary}"
TESTDIR=${FETCH_TESTDIR:-$(cd "$(dirname "$0")" && pwd)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/agfetch-test.XXXXXX")
PIDS=""

cleanup() {
	rc=$?
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		for f in "$WORK"/*.log; do
			[ -f "$f" ] || continue
			echo "---- $f (tail)"; tail -n 20 "$f"
		done
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }
need() { for b in "$@"; do command -v "$b" >/dev/null 2>&1 || skip "$b not installed"; done; }

need python3

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
	i=0
	while ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2).close()" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "server on port $1 did not start"
		sleep 0.1
	done
}

bg() { # bg LOGNAME CMD... : start a server in the background, remember it
	log=$1; shift
	"$@" >"$WORK/$log.log" 2>&1 &
	PIDS="$PIDS $!"
}

# fetch OUTFILE ARGS... : run the tool, provenance to OUTFILE, log to OUTFILE.err
fetch() {
	o=$1; shift
	"$FETCH_TOOL" "$@" >"$o" 2>"$o.err"
}

jget() { # jget FILE KEY : a top-level key of the provenance printed by fetch-tool
	python3 - "$1" "$2" <<'PY'
import json,sys
t=open(sys.argv[1]).read()
j=json.loads(t[:t.rindex('}')+1])
v=j.get(sys.argv[2])
print(v if v is not None else "")
PY
}
counter() { awk -v k="$2" '$1==k {print $2}' "$1"; }

# A registry over plain HTTP with storage under $WORK/$1 on port $2; extra YAML on stdin appended.
registry_config() { # registry_config NAME PORT > cfg  (extra http/auth YAML appended by caller)
	mkdir -p "$WORK/$1"
	cat <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/$1
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$2
YAML
}

start_plain_registry() { # start_plain_registry NAME PORT
	registry_config "$1" "$2" >"$WORK/$1.yml"
	bg "$1" docker-registry serve "$WORK/$1.yml"
	wait_port "$2"
}

# make_ca DIR : a CA and a server certificate for 127.0.0.1
make_ca() {
	d=$1; mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=agfetch test CA" \
		-keyout "$d/ca.key" -out "$d/ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
}

# seed_image LAYOUT TAG REGHOST REPO [skopeo args] : push a local OCI layout into a registry
seed_image() {
	l=$1; t=$2; h=$3; r=$4; shift 4
	skopeo copy --quiet --dest-tls-verify=false "$@" "oci:$l:$t" "docker://$h/$r:$t" >"$WORK/skopeo-seed.log" 2>&1 ||
		{ cat "$WORK/skopeo-seed.log"; fail "skopeo could not seed $h/$r:$t"; }
}

raw_digest() { # raw_digest docker://... : sha256 of the registry's manifest bytes
	skopeo inspect --raw --tls-verify=false "$1" | sha256sum | cut -d' ' -f1
}

# start_nginx PORT ROOT [EXTRA_SERVER_DIRECTIVES] : static files with Range support;
# access log $WORK/access.log: "URI STATUS BODY_BYTES RANGE AUTH"
start_nginx() {
	mkdir -p "$WORK/nginx/tmp"
	cat >"$WORK/nginx/nginx.conf" <<NGX
user root;
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
  log_format t '\$request_uri \$status \$body_bytes_sent "\$http_range" "\$http_authorization"';
  access_log $WORK/access.log t;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$1;
    root $2;
    ${3:-}
  }
}
NGX
	bg nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
	wait_port "$1"
}

manifest_type() { # manifest_type HOST REPO REF : the Content-Type a registry serves the manifest with
	python3 - "$@" <<'PY'
import sys, urllib.request
h, r, t = sys.argv[1:]
q = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (h, r, t), method="HEAD", headers={"Accept": ", ".join([
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"])})
print(urllib.request.urlopen(q, timeout=10).headers.get("Content-Type", ""))
PY
}

# refused NAME PATTERN WHAT: `build NAME` (the caller's function: agpack build
# of $WORK/NAME.json into $WORK/out-NAME, its output in $WORK/NAME.log) must
# fail with a message matching PATTERN and leave neither --out nor staging.
refused() {
	if build "$1"; then fail "$3: agpack build succeeded"; fi
	grep -q "$2" "$WORK/$1.log" || { cat "$WORK/$1.log"; fail "$3: message"; }
	[ ! -e "$WORK/out-$1" ] || fail "$3: output left at --out"
	ls "$WORK"/out-"$1".* >/dev/null 2>&1 && fail "$3: staging left beside --out"
	pass "$3 refused: $(grep -m1 "$2" "$WORK/$1.log")"
}

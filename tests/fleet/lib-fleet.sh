# Helpers for the fleet tests (sourced after tests/lib.sh and tests/deploy/lib-deploy.sh):
# nginx serving a mirror and a docker-registry, on ADDR (127.0.0.1 unless set),
# each stopped by the EXIT cleanup of tests/lib.sh.
: "${AGSYNC:?AGSYNC must point at the agsync binary}"
AGSYNC=$(realpath "$AGSYNC")
FLEET_DIR=$TESTS_DIR/fleet
_fleet_pids=()
_fleet_stop() { local p; for p in "${_fleet_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${_fleet_pids[@]}"; do wait "$p" 2>/dev/null; done; }
on_exit _fleet_stop
# wait_port HOST PORT
wait_port() {
	local i
	for i in $(seq 100); do
		$PY -c "import socket,sys; socket.create_connection(('$1',$2),0.2).close()" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# start_mirror HOST PORT ROOT [PREFIX...]: nginx with its access log in $WORK/access.log.
# PREFIX: a command to run nginx under (ip netns exec NS).
start_mirror() {
	local h=$1 p=$2 root=$3; shift 3
	local d=$WORK/nginx-$h-$p
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<NGX
user root;
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 256; }
http {
  log_format t '\$remote_addr \$request_uri \$status \$body_bytes_sent "\$http_range"';
  access_log $WORK/access.log t;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  default_type application/octet-stream;
  server { listen $h:$p; root $root; }
}
NGX
	"$@" nginx -p "$d" -c "$d/nginx.conf" >"$d/out.log" 2>&1 &
	_fleet_pids+=($!)
	wait_port "$h" "$p"
}
# start_registry HOST PORT [PREFIX...]: a plain-HTTP docker-registry, storage in $WORK.
# With REG_TLS=DIR (make_ca's) and REG_HTPASSWD=FILE set: TLS and credentials.
start_registry() {
	local h=$1 p=$2; shift 2
	local d=$WORK/registry-$h-$p
	mkdir -p "$d/data"
	cat >"$d/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $d/data
  delete:
    enabled: true
http:
  addr: $h:$p
YAML
	if [ -n "${REG_TLS:-}" ]; then
		printf '  tls:\n    certificate: %s\n    key: %s\nauth:\n  htpasswd:\n    realm: site\n    path: %s\n' \
			"$REG_TLS/server.crt" "$REG_TLS/server.key" "$REG_HTPASSWD" >>"$d/config.yml"
	fi
	"$@" docker-registry serve "$d/config.yml" >"$d/out.log" 2>&1 &
	_fleet_pids+=($!)
	wait_port "$h" "$p"
}
# layout_digest LAYOUT: the digest index.json names for the image manifest.
layout_digest() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]+'/index.json'))['manifests'][0]['digest'])" "$1"; }
# make_ca DIR IP: a CA and a server certificate for IP.
make_ca() {
	local d=$1 ip=$2; mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=agsync test CA" \
		-keyout "$d/ca.key" -out "$d/ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null &&
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$ip" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null &&
	printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$ip" >"$d/ext" &&
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
}

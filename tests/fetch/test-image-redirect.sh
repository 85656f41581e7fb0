#!/bin/sh
# Blob downloads redirected to another host (as registries do to object
# storage): the redirect is followed and the registry credentials are not sent
# to the other host.  nginx fronts an htpasswd registry; blob requests get a
# 307 to a second nginx server ("storage", named localhost) that adds its own
# credentials towards the registry.
. "$(dirname "$0")/lib.sh"
need docker-registry skopeo nginx htpasswd
unset AGKIT_REGISTRY_USER AGKIT_REGISTRY_PASSWORD DOCKER_CONFIG
export HOME="$WORK/home"; mkdir -p "$HOME"

python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 >/dev/null
htpasswd -Bbc "$WORK/htpasswd" carol 'pw' 2>/dev/null
P0=$(free_port)
start_plain_registry reg "$P0"
seed_image "$WORK/src" v1 "127.0.0.1:$P0" demo/app
kill $PIDS; wait 2>/dev/null || true; PIDS=""
RP=$(free_port)
{ registry_config reg "$RP"; cat <<YAML
auth:
  htpasswd:
    realm: agfetch-test
    path: $WORK/htpasswd
YAML
} >"$WORK/auth.yml"
bg reg-auth docker-registry serve "$WORK/auth.yml"
wait_port "$RP"

FP=$(free_port); SP=$(free_port)
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<NGX
user root;
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
  log_format t '\$server_port \$request_uri \$status "\$http_authorization"';
  access_log $WORK/access.log t;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$FP;
    location ~ ^/v2/.*/blobs/ { return 307 http://localhost:$SP\$request_uri; }
    location / { proxy_pass http://127.0.0.1:$RP; }
  }
  server {
    listen 127.0.0.1:$SP;
    location / {
      proxy_set_header Authorization "Basic $(printf carol:pw | base64 -w0)";
      proxy_pass http://127.0.0.1:$RP;
    }
  }
}
NGX
bg nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
wait_port "$FP"; wait_port "$SP"
H=127.0.0.1:$FP

AGKIT_REGISTRY_USER=carol AGKIT_REGISTRY_PASSWORD=pw \
	fetch "$WORK/p1" image "$H/demo/app:v1" "$WORK/o1" --cache "$WORK/c" --insecure "$H" ||
	{ cat "$WORK/p1.err"; fail "fetch with redirected blobs"; }
skopeo inspect "oci:$WORK/o1:v1" >/dev/null || fail "skopeo rejects the layout"
grep -q "^$FP /v2/demo/app/blobs/.* 307 \"Basic " "$WORK/access.log" || { cat "$WORK/access.log"; fail "no redirect seen"; }
grep -q "^$SP /v2/demo/app/blobs/.* 200 " "$WORK/access.log" || { cat "$WORK/access.log"; fail "storage not reached"; }
if grep "^$SP " "$WORK/access.log" | grep -qv '"-"$'; then
	cat "$WORK/access.log"; fail "credentials were sent to the redirect target"
fi
pass "blobs followed to another host without the registry credentials"

#!/bin/bash
# A simulated site (issue 22): a gateway and FLEET_NODES nodes (10 by hand,
# 4 in meson), each in its own network namespace with its own address on a
# bridge, its own deployment root and its own sshd; docker-registry and nginx
# in the gateway's namespace; Ansible (deploy/ansible/rollout.yml) run from the
# gateway's namespace over ssh.  Stories: v2 rolls out canary then waves; v3
# fails the health gate on the canary (every other node untouched); v4 fails
# the served-model check on one node of wave 2 (rollout stops there, that node
# rolled back, later waves untouched); a tampered v5 on the mirror refused by
# every node; a registry not serving v6's image digest detected on the canary.
# Everything is removed at the end, also on failure.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
. "$(dirname "$0")/lib-fleet.sh"
: "${AGRUN:?AGRUN must point at the agrun binary}"
: "${AGSERVE:?AGSERVE must point at the agserve binary}"
AGRUN=$(realpath "$AGRUN"); AGSERVE=$(realpath "$AGSERVE")
need nginx docker-registry skopeo ansible-playbook ssh-keygen ip
[ -x /usr/sbin/sshd ] || skip_all "openssh-server not installed"
[ "$(id -u)" = 0 ] || skip_all "network namespaces need root"
N=${FLEET_NODES:-4}
[ "$N" -ge 3 ] && [ "$N" -le 200 ] || { echo "FLEET_NODES: 3 to 200"; exit 2; }
ID=$(( $$ % 100000 ))
BR=ak${ID}br
NETS=()
_site_down() {
	local ns p
	# Whatever still runs inside the test's namespaces was started by it.
	for ns in "${NETS[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	ip link del "$BR" 2>/dev/null
	return 0
}
on_exit _site_down
ip netns add "ak${ID}gw" 2>"$WORK/netns.err" || skip_all "network namespaces not permitted: $(head -1 "$WORK/netns.err")"
NETS+=("ak${ID}gw")
ip link add "$BR" type bridge 2>"$WORK/netns.err" || skip_all "cannot create a bridge: $(head -1 "$WORK/netns.err")"
ip link set "$BR" up
NET=10.$(( 64 + RANDOM % 64 )).$(( RANDOM % 250 ))
# join NS IP: a veth from NS onto the bridge, NS gets IP/24.
join() {
	local ns=$1 ip=$2 v=ak${ID}v$3
	ip link add "$v" type veth peer name eth0 netns "$ns" &&
	ip link set "$v" master "$BR" up &&
	ip -n "$ns" link set lo up && ip -n "$ns" link set eth0 up &&
	ip -n "$ns" addr add "$ip/24" dev eth0
}
GW=$NET.1
join "ak${ID}gw" "$GW" 0 || { not_ok "gateway namespace on the bridge"; done_testing; exit; }
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cd "$WORK"
ssh-keygen -q -t ed25519 -N '' -f ctl >/dev/null
mkdir -p /run/sshd bin
ln -s "$AGSYNC" bin/agsync; ln -s "$AGCTL" bin/agctl
node_ip() { echo "$NET.$((10 + $1))"; }
nroot() { echo "$WORK/n$1/R"; }
nst() { "$AGCTL" --root "$(nroot "$1")" status --json | $PY -c "import json,sys; s=json.load(sys.stdin); print($2)"; }
active_v() { nst "$1" 's["slots"][s["active"]]["version"] if s["active"] else None'; }
# state of a node: "ACTIVE_VERSION/blue-state:version/green-state:version"
nstate() { nst "$1" '"%s/%s" % (s["slots"][s["active"]]["version"] if s["active"] else None, "/".join("%s:%s" % (v["state"], v["version"]) for k, v in sorted(s["slots"].items())))'; }

# ---- bundles (as tests/health/story.sh builds them: a recorded suite, a damaged model)
keygen k
$PY "$TESTS_DIR/runtime/gen_tiny.py" llama bf16 m-good >/dev/null
$PY "$TESTS_DIR/health/corrupt_model.py" m-good m-noise noise
"$AGRUN" record m-good --out suite.json >/dev/null 2>&1 || not_ok "agrun record"
$PY "$TESTS_DIR/fetch/mkimage.py" img v1 --layers 1 >/dev/null
$PY "$TESTS_DIR/fetch/mkimage.py" img-other v1 --layers 1 >/dev/null
pack() { # pack OUT VERSION MODEL [IMAGE]
	local img=""
	[ -n "${4:-}" ] && img=",{\"type\":\"oci-archive\",\"name\":\"runtime\",\"path\":\"$4\"}"
	printf '{"name":"llm","channel":"stable","version":%s,"artifacts":[{"type":"files","name":"model","path":"%s","health":"suite.json"}%s]}' \
		"$2" "$3" "$img" > "spec-$1.json"
	"$AGPACK" build "spec-$1.json" --key k.key --out "$1" >/dev/null 2>&1
}
for v in 1 2 4 5; do pack b$v $v m-good || not_ok "pack v$v"; done
pack b3 3 m-noise || not_ok "pack v3"
pack b6 6 m-good img || not_ok "pack v6"

# ---- gateway: mirror and registry
M=$WORK/mirror; mkdir -p "$M"
start_mirror "$GW" 8080 "$M" ip netns exec "ak${ID}gw" || { not_ok "nginx in the gateway namespace"; done_testing; exit; }
start_registry "$GW" 5000 ip netns exec "ak${ID}gw" || { not_ok "docker-registry in the gateway namespace"; done_testing; exit; }
publish() { inns "ak${ID}gw" "$AGSYNC" publish "$@" --pubkey k.pub --mirror "$M" --registry "$GW:5000" --insecure-registry; }

# ---- nodes: namespace, address, root (v1 active and good), sshd
printf '[agkit_nodes]\n' > inventory
for i in $(seq "$N"); do
	ns=ak${ID}n$i; ip=$(node_ip "$i"); d=$WORK/n$i
	ip netns add "$ns" && NETS+=("$ns") && join "$ns" "$ip" "$i" || { not_ok "node $i namespace"; done_testing; exit; }
	mkdir -p "$d"
	"$AGCTL" --root "$d/R" init --pubkey k.pub >/dev/null
	$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c.update({'latency_regression': 100, 'health_timeout_s': 120, 'health_memory_limit_mb': 0}); json.dump(c, open(sys.argv[1],'w'))" "$d/R/config.json"
	{ "$AGIMPORT" b1 --root "$d/R" && "$AGCTL" --root "$d/R" promote && "$AGCTL" --root "$d/R" mark-good; } >/dev/null 2>&1 || not_ok "node $i: v1 in place"
	ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey"
	cp ctl.pub "$d/authorized_keys"
	cat > "$d/sshd_config" <<CFG
ListenAddress $ip
HostKey $d/hostkey
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
CFG
	inns "$ns" /usr/sbin/sshd -D -e -f "$d/sshd_config" >"$d/sshd.log" 2>&1 &
	_fleet_pids+=($!)
	# the node's served model: agserve follows promote and rollback
	inns "$ns" "$AGSERVE" --root "$d/R" --listen "$ip:8000" >"$d/agserve.log" 2>&1 &
	_fleet_pids+=($!)
	echo "n$i ansible_host=$ip agkit_root=$d/R agkit_serve_url=http://$ip:8000" >> inventory
done
for i in $(seq "$N"); do wait_port "$(node_ip "$i")" 22 || not_ok "sshd of node $i"; done
for i in $(seq "$N"); do wait_port "$(node_ip "$i")" 8000 || not_ok "agserve of node $i"; done
# served VERSION of node i, asked from the gateway's namespace
served_v() { inns "ak${ID}gw" $PY -c "import json,sys,urllib.request; print(json.load(urllib.request.urlopen('http://%s:8000/health' % sys.argv[1], timeout=10)).get('version'))" "$(node_ip "$1")" 2>/dev/null; }
cat >> inventory <<INV
[agkit_nodes:vars]
ansible_user=root
ansible_ssh_private_key_file=$WORK/ctl
ansible_python_interpreter=/usr/bin/python3
agkit_bin_dir=$WORK/bin
agkit_mirror_url=http://$GW:8080/
agkit_bundle=llm
agkit_channel=stable
agkit_registry=$GW:5000
agkit_registry_insecure=true
INV
mkdir -p ansible-home
cat > ansible.cfg <<CFG
[defaults]
host_key_checking = False
forks = 50
local_tmp = $WORK/ansible-home/tmp
remote_tmp = $WORK/ansible-home/remote
retry_files_enabled = False
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=no -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o ConnectTimeout=20
CFG
export ANSIBLE_CONFIG=$WORK/ansible.cfg ANSIBLE_HOME=$WORK/ansible-home ANSIBLE_NOCOLOR=1
PLAYBOOKS=$TESTS_DIR/../deploy/ansible
WAVES='{"agkit_waves": [1, "50%", "100%"]}'
rollout() { # rollout LOG [ansible-playbook args]: the playbook's exit status
	local log=$1; shift
	inns "ak${ID}gw" ansible-playbook -i inventory "$PLAYBOOKS/rollout.yml" "$@" > "$log" 2>&1
}
summary() { inns "ak${ID}gw" ansible-playbook -i inventory "$PLAYBOOKS/status.yml" > "$1" 2>&1; }
show() { sed 's/^/#   /' "$1" | grep -E 'fatal|FAILED|failed:|msg|PLAY RECAP|ok=' | tail -30; }
all_nodes() { # all_nodes DESC EXPR-ON-i...: the shell test holds for every node i
	local d=$1 i bad=""; shift
	for i in $(seq "$N"); do eval "$*" || bad="$bad n$i=$(nstate $i)"; done
	[ -z "$bad" ] && ok "$d" || not_ok "$d:$bad"
}
mark_good_all() { for i in $(seq "$N"); do "$AGCTL" --root "$(nroot "$i")" mark-good >/dev/null 2>&1; done; }
# The waves: 1, then half the nodes (rounded down), then the rest.
W2_END=$(( 1 + N / 2 ))
FAULT=$(( W2_END < 5 ? W2_END : 5 ))
diag "$N nodes on $NET.0/24; waves: n1 | n2..n$W2_END | n$((W2_END + 1))..n$N; v4 fault on n$FAULT"

# ---- v2: canary, then waves, to every node
check "publish v2 on the gateway" publish b2
t0=$(date +%s)
rollout v2.log -e "$WAVES"; rc=$?
[ $rc = 0 ] && ok "v2 rollout succeeds ($(( $(date +%s) - t0 )) s)" || { not_ok "v2 rollout succeeds (exit $rc)"; show v2.log; }
all_nodes "every node runs v2" '[ "$(active_v $i)" = 2 ]'
all_nodes "every node's agserve serves v2" '[ "$(served_v $i)" = 2 ]'
grep -q "TASK \[agkit_node : agserve serves the version staged" v2.log && ok "the rollout asked each agserve for its version" || not_ok "the rollout asked each agserve for its version"
# waves LOG: the hosts of each serial batch that ran agsync pull, "n1 | n2 n3 | n4"
waves() {
	$PY - "$1" <<'PY'
import re, sys
out = []
for sec in open(sys.argv[1]).read().split("PLAY [agkit rollout]")[1:]:
    t = sec.split("TASK [agkit_node : agsync pull")[1].split("TASK [")[0] if "agsync pull" in sec else ""
    out.append(" ".join(sorted(set(re.findall(r"^(?:ok|changed|fatal): \[(n\d+)\]", t, re.M)), key=lambda h: int(h[1:]))))
print(" | ".join(out))
PY
}
want="n1 | $(seq -s ' ' -f 'n%g' 2 $W2_END) | $(seq -s ' ' -f 'n%g' $((W2_END + 1)) $N)"
got=$(waves v2.log)
[ "$got" = "$want" ] && ok "waves: canary n1 alone, then the others in two waves ($got)" || not_ok "waves: want $want, got $got"
check "the summary lists every node" sh -c "$(declare -f summary inns); ID=$ID WORK=$WORK PLAYBOOKS=$PLAYBOOKS summary sum2.log; test \$(grep -c 'agkit-node n[0-9]* active=' sum2.log) = $N"
mark_good_all

# ---- v3: fails the health gate on the canary; nobody else touched
check "publish v3 (damaged weights)" publish b3
rollout v3.log -e "$WAVES"; rc=$?
[ $rc != 0 ] && ok "v3 rollout stops (exit $rc)" || not_ok "v3 rollout stops"
grep -q "agctl cycle" v3.log && grep -q "fatal: \[n1\]" v3.log && ok "it stopped at the canary's health gate" || { not_ok "it stopped at the canary's health gate"; show v3.log; }
check "the canary still runs v2, v3 marked bad" sh -c "test \"$(active_v 1)\" = 2 && echo \"$(nstate 1)\" | grep -q bad:3"
all_nodes "every other node untouched (v2 active, nothing staged)" '[ $i = 1 ] || [ "$(nst $i "[v[\"state\"] for v in s[\"slots\"].values()].count(\"staged\")")" = 0 -a "$(active_v $i)" = 2 ]'
check "no other node asked the mirror for v3" sh -c "! grep -v '^$NET.11 ' access.log | grep -q '/llm/stable/3/'"

# ---- v4: fails on node FAULT of wave 2 after promotion; stops there, that node rolled back
check "publish v4" publish b4
sed -i "s|^n$FAULT ansible_host=[^ ]* agkit_root=[^ ]*|& agkit_check_env='{\"AGKIT_HEALTH_FAULT\": \"segv\"}'|" inventory
rollout v4.log -e "$WAVES"; rc=$?
[ $rc != 0 ] && ok "v4 rollout stops (exit $rc)" || { not_ok "v4 rollout stops"; show v4.log; }
grep -q "fatal: \[n$FAULT\]" v4.log && ok "n$FAULT failed its served-model check" || { not_ok "n$FAULT failed its served-model check"; show v4.log; }
check "n$FAULT rolled back to v2" test "$(active_v $FAULT)" = 2
ok_served=""
for t in $(seq 30); do [ "$(served_v $FAULT)" = 2 ] && { ok_served=1; break; }; sleep 1; done
[ -n "$ok_served" ] && ok "n$FAULT's agserve serves v2 again" || not_ok "n$FAULT's agserve serves v2 again ($(served_v $FAULT))"
check "n$FAULT's v4 slot marked bad with the rollout's reason" sh -c "'$AGCTL' --root '$(nroot $FAULT)' status --json | grep -q 'rollout of llm stopped on this node'"
all_nodes "the canary and the rest of wave 2 run v4" '[ $i = $FAULT ] || [ $i -gt $W2_END ] || [ "$(active_v $i)" = 4 -a "$(served_v $i)" = 4 ]'
all_nodes "the nodes of later waves untouched (v2 served, nothing staged)" '[ $i -le $W2_END ] || [ "$(active_v $i)" = 2 -a "$(served_v $i)" = 2 -a "$(nst $i "[v[\"state\"] for v in s[\"slots\"].values()].count(\"staged\")")" = 0 ]'
sed -i "s| agkit_check_env=.*||" inventory
mark_good_all

# ---- v5 tampered on the mirror: refused by every node
check "publish v5" publish b5
printf 'X' | dd of="$M/llm/stable/5/vol-00001.agv" bs=1 seek=4000 conv=notrunc 2>/dev/null
(cd "$M/llm/stable/5" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort | xargs sha256sum > SHA256SUMS)
before=$(for i in $(seq "$N"); do nstate $i; done)
rollout v5.log -e '{"agkit_waves": ["100%"]}'; rc=$?
[ $rc != 0 ] && ok "v5 rollout fails (exit $rc)" || not_ok "v5 rollout fails"
[ "$(grep -c 'fatal: \[n[0-9]*\]: FAILED.*verif\|fatal: \[n[0-9]*\]:.*agsync pull' v5.log)" = "$N" ] && ok "every node refused v5 at agsync pull" || { not_ok "every node refused v5 at agsync pull"; show v5.log; }
after=$(for i in $(seq "$N"); do nstate $i; done)
[ "$before" = "$after" ] && ok "no node's state changed" || not_ok "no node's state changed: $before -> $after"
all_nodes "no temporary directory left on any node" '[ ! -e "$(nroot $i).agsync-pull" ]'
rm -rf "$M/llm/stable/5"

# ---- v6: the registry no longer serves the bundle's image digest: detected on the canary
check "publish v6 with its image" publish b6
D6=$(layout_digest img)
inns "ak${ID}gw" $PY - "$GW:5000" "$D6" <<'PY' || not_ok "delete v6's image manifest from the registry"
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request("http://%s/v2/llm/runtime/manifests/%s" % tuple(sys.argv[1:]), method="DELETE"), timeout=10)
PY
inns "ak${ID}gw" skopeo copy --quiet --dest-tls-verify=false oci:img-other:v1 "docker://$GW:5000/llm/runtime:v1" >/dev/null 2>&1 || not_ok "push another image under the tag"
rollout v6.log -e "$WAVES"; rc=$?
[ $rc != 0 ] && ok "v6 rollout stops (exit $rc)" || not_ok "v6 rollout stops"
grep -q "does not serve image llm/runtime@$D6" v6.log && ok "the canary detected the missing image digest" || { not_ok "the canary detected the missing image digest"; show v6.log; }
check "the canary's v6 slot is marked bad, v4 still active" test "$(active_v 1)" = 4
all_nodes "no other node staged v6" '[ $i = 1 ] || [ "$(nst $i "[v[\"version\"] for v in s[\"slots\"].values()].count(6)")" = 0 ]'
summary final.log
grep 'agkit-node n' final.log | sed 's/^ *"msg": "/# /; s/"$//'
done_testing

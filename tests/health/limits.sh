#!/bin/bash
# Security review (issue 13), health-check items:
#   - agctl never runs an `agrun` from the working directory: it resolves agrun
#     next to its own executable, or from an absolute AGKIT_AGRUN or config
#     agrun_path, and refuses a relative one;
#   - agctl init writes a default health_memory_limit_mb (75% of MemTotal);
#   - the check runs at a lower CPU and I/O priority (nice +10, best-effort 7)
#     under RLIMIT_DATA.
# The "agrun" here are shell scripts that record how they were run.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
cd "$WORK"
chmod 0755 "$WORK"
keygen k
# A copy of agctl with no agrun beside it (nor in ../agrun/).
mkdir -p bin && cp "$AGCTL" bin/agctl
LONE=$WORK/bin/agctl
# fake_agrun PATH MARK: an agrun that records its nice value, I/O priority and
# data limit in MARK, then reports a pass.
fake_agrun() {
	cat > "$1" <<EOF
#!/bin/sh
{ echo "nice \$(cut -d' ' -f19 /proc/self/stat)"; echo "io \$(ionice -p \$\$ 2>&1)"; echo "data \$(ulimit -d)"; } > "$2"
echo '{"pass": true}'
EOF
	chmod 0755 "$1"
}
mkdir -p evil && fake_agrun evil/agrun "$WORK/pwned"
echo '{"agrun_suite": 1, "prompts": []}' > suite.json
mkdir -p model && echo w > model/weights.bin
printf '{"name":"llm","channel":"stable","version":1,"artifacts":[{"type":"files","name":"model","path":"model","health":"suite.json"}]}' > spec.json
"$AGPACK" build spec.json --key k.key --out b1 >pack.log 2>&1 || { echo "Bail out! cannot pack: $(cat pack.log)"; exit 1; }
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
"$AGIMPORT" b1 --root "$R" >/dev/null 2>&1 || echo "Bail out! cannot import"

memtotal_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
want=$((memtotal_mb * 3 / 4))
check "agctl init writes a default health_memory_limit_mb (75% of RAM)" \
	test "$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['health_memory_limit_mb'])" "$R/config.json")" -ge $((want - 1))
check "agctl init --health-memory-mb sets it" sh -c "'$AGCTL' --root '$WORK/R2' init --pubkey k.pub --health-memory-mb 512 >/dev/null && grep -q '\"health_memory_limit_mb\": 512' '$WORK/R2/config.json'"

# The working directory holds an executable named agrun; nothing else is found.
expect_exit 7 "agctl with no agrun beside it fails the check" sh -c "cd evil && env -u AGKIT_AGRUN '$LONE' --root '$R' health"
last_output | grep -q "cannot find agrun" && ok "... and says it cannot find agrun" || { not_ok "... and says it cannot find agrun"; last_output | sed 's/^/#   /'; }
check "... without running ./agrun from the working directory" test ! -e pwned
expect_exit 7 "a relative AGKIT_AGRUN is refused" sh -c "cd evil && AGKIT_AGRUN=agrun '$LONE' --root '$R' health"
last_output | grep -q "AGKIT_AGRUN.*absolute" && ok "... message says it must be absolute" || { not_ok "... message says it must be absolute"; last_output | sed 's/^/#   /'; }
check "... and ./agrun did not run" test ! -e pwned
expect_exit 7 "PATH is not searched either" sh -c "cd / && PATH='$WORK/evil':\$PATH '$LONE' --root '$R' health"
check "... and the agrun on PATH did not run" test ! -e pwned

fake_agrun good-agrun "$WORK/ran-env"
check "an absolute AGKIT_AGRUN runs" sh -c "cd evil && AGKIT_AGRUN='$WORK/good-agrun' '$LONE' --root '$R' health"
check "... it, not ./agrun" sh -c "test -e '$WORK/ran-env' && test ! -e '$WORK/pwned'"
n0=$(cut -d' ' -f19 /proc/$$/stat) # this test may itself run under nice
n1=$((n0 + 10 > 19 ? 19 : n0 + 10))
check "the check ran 10 nice levels lower (nice $n1)" grep -qx "nice $n1" ran-env
check "the check ran at best-effort I/O priority 7" grep -qx "io best-effort: prio 7" ran-env
check "the check ran under the default data limit" grep -qx "data $(( $($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['health_memory_limit_mb'])" "$R/config.json") * 1024 ))" ran-env
fake_agrun cfg-agrun "$WORK/ran-cfg"
$PY - "$R/config.json" "$WORK/cfg-agrun" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["agrun_path"] = sys.argv[2]; json.dump(c, open(sys.argv[1], "w"))
PY
check "config agrun_path (absolute) is used" sh -c "cd evil && env -u AGKIT_AGRUN '$LONE' --root '$R' health && test -e '$WORK/ran-cfg'"
$PY - "$R/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["agrun_path"] = "agrun"; json.dump(c, open(sys.argv[1], "w"))
PY
expect_exit 7 "a relative agrun_path is refused" sh -c "cd evil && env -u AGKIT_AGRUN '$LONE' --root '$R' health"
check "... and ./agrun did not run" test ! -e pwned

# config cpu_kernels is the check's AGRT_SIMD, unless agctl has its own.
cat > simd-agrun <<EOF
#!/bin/sh
echo "simd \${AGRT_SIMD-unset}" > "$WORK/ran-simd"
echo '{"pass": true}'
EOF
chmod 0755 simd-agrun
setkey() { $PY -c "import json,sys; c=json.load(open(sys.argv[1])); c.pop('agrun_path', None); c.update(json.loads(sys.argv[2])); json.dump(c,open(sys.argv[1],'w'))" "$R/config.json" "$1"; }
setkey '{}'
check "without cpu_kernels the check gets no AGRT_SIMD" sh -c "env -u AGRT_SIMD AGKIT_AGRUN='$WORK/simd-agrun' '$LONE' --root '$R' health && grep -qx 'simd unset' '$WORK/ran-simd'"
setkey '{"cpu_kernels": "amx"}'
check "cpu_kernels amx: the check runs with AGRT_SIMD=amx" sh -c "env -u AGRT_SIMD AGKIT_AGRUN='$WORK/simd-agrun' '$LONE' --root '$R' health && grep -qx 'simd amx' '$WORK/ran-simd'"
check "... an AGRT_SIMD of agctl's own wins" sh -c "AGRT_SIMD=avx2 AGKIT_AGRUN='$WORK/simd-agrun' '$LONE' --root '$R' health && grep -qx 'simd avx2' '$WORK/ran-simd'"
setkey '{}'
done_testing

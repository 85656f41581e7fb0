#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Debian packages of agkit (issue 17): scripts/package.sh builds agkit,
# agkit-serve, agkit-pack (and agkit-cuda when nvcc is here) from a fresh
# release build; checks their fields, contents and Depends (agkit pulls no
# libcurl and no CUDA), that apt can resolve them on this host (simulated),
# installs agkit, agkit-pack and agkit-cuda with the real dpkg into a private
# root, runs the installed agrun on the CPU with and without the plugin,
# and removes them again.
. "$(dirname "$0")/../lib.sh"
need dpkg-deb dpkg-shlibdeps dpkg-architecture readelf
ROOT=$(cd "$TESTS_DIR/.." && pwd)
OUT=$WORK/debs
if ! "$ROOT/scripts/package.sh" "$OUT" "$WORK/build" >"$WORK/pkg.log" 2>&1; then
	not_ok "scripts/package.sh builds the packages"; sed 's/^/#   /' "$WORK/pkg.log" | tail -20
	done_testing; exit
fi
ok "scripts/package.sh builds the packages"
V=$(sed -n "s/^ *version : '\([^']*\)'.*/\1/p" "$ROOT/meson.build" | head -1)-1
A=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb() { echo "$OUT/${1}_${V}_${A}.deb"; }
want_cuda=no
[ -f "$WORK/build/kernels/libagrt-cuda.so" ] && want_cuda=yes
for p in agkit agkit-serve agkit-pack agkit-sync; do
	check "$p: a package named $p, version $V, architecture $A" \
		test "$(dpkg-deb -f "$(deb $p)" Package Version Architecture 2>/dev/null | tr '\n' ' ')" = \
		"Package: $p Version: $V Architecture: $A "
done
if [ $want_cuda = yes ]; then check "agkit-cuda built (this build has CUDA)" test -f "$(deb agkit-cuda)"
else check "no agkit-cuda without CUDA" test ! -e "$(deb agkit-cuda)"; fi

contents() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$'; }
contents "$(deb agkit)" >"$WORK/agkit.list"
for f in /usr/bin/agimport /usr/bin/agctl /usr/bin/agrun /usr/share/man/man1/agimport.1 /usr/share/man/man8/agctl.8 \
	/usr/share/man/man1/agrun.1 /usr/lib/systemd/system/agkit-cycle.service /usr/lib/systemd/system/agkit-cycle.timer \
	/etc/cron.d/agkit /etc/logrotate.d/agkit /usr/lib/systemd/system/agkit-alert@.service \
	/usr/share/bash-completion/completions/agctl /usr/share/doc/agkit/OPERATIONS.md /usr/share/doc/agkit/SECURITY.md; do
	check "agkit contains $f" grep -qx "$f" "$WORK/agkit.list"
done
check "agkit carries neither agpack, agserve nor the CUDA plugin" \
	bash -c "! grep -E 'agpack|bin/agserve|libagrt-cuda' '$WORK/agkit.list'"
check "agkit-serve contains agserve, its man page, unit and completion only" \
	test "$(contents "$(deb agkit-serve)" | sort | tr '\n' ' ')" = \
	"/usr/bin/agserve /usr/lib/systemd/system/agkit-serve.service /usr/share/bash-completion/completions/agserve /usr/share/man/man1/agserve.1 "
check "agkit-pack contains agpack, its man page and completion only" \
	test "$(contents "$(deb agkit-pack)" | sort | tr '\n' ' ')" = \
	"/usr/bin/agpack /usr/share/bash-completion/completions/agpack /usr/share/man/man1/agpack.1 "

dep() { dpkg-deb -f "$(deb "$1")" Depends; }
check "agkit Depends pulls no libcurl: $(dep agkit)" bash -c "! dpkg-deb -f '$(deb agkit)' Depends | grep -q curl"
for l in libsodium23 libssl3 libzstd1 libjansson4 libisal2 libc6; do
	check "agkit Depends names $l" bash -c "dpkg-deb -f '$(deb agkit)' Depends | grep -q '$l'"
done
check "agkit-sync contains agsync and its man page only" \
	test "$(contents "$(deb agkit-sync)" | sort | tr '\n' ' ')" = "/usr/bin/agsync /usr/share/man/man1/agsync.1 "
check "agkit-sync Depends names libcurl4 and skopeo" \
	bash -c "dpkg-deb -f '$(deb agkit-sync)' Depends | grep -q libcurl4 && dpkg-deb -f '$(deb agkit-sync)' Depends | grep -q skopeo"
check "agkit-pack Depends names libcurl4" bash -c "dpkg-deb -f '$(deb agkit-pack)' Depends | grep -q libcurl4"
check "agkit-serve Depends names libmicrohttpd12 and adduser" \
	bash -c "dpkg-deb -f '$(deb agkit-serve)' Depends | grep -q libmicrohttpd12 && dpkg-deb -f '$(deb agkit-serve)' Depends | grep -q adduser"
check "agkit's conffiles: the cron and logrotate files" \
	bash -c "dpkg-deb -I '$(deb agkit)' conffiles | sort | tr '\n' ' ' | grep -qx '/etc/cron.d/agkit /etc/logrotate.d/agkit '"
x=$WORK/x
dpkg-deb -x "$(deb agkit)" "$x"
check "the packaged units run /usr/bin/agctl" grep -q '^ExecStart=/usr/bin/agctl ' "$x/usr/lib/systemd/system/agkit-cycle.service"
check "the packaged agrun has no CUDA library NEEDED" \
	bash -c "readelf -d '$x/usr/bin/agrun' | grep NEEDED | grep -vqE 'cudart|cublas' && ! readelf -d '$x/usr/bin/agrun' | grep -qE 'cudart|cublas'"
check "md5sums cover every file of agkit" \
	bash -c "cd '$x' && dpkg-deb -I '$(deb agkit)' md5sums | md5sum -c --quiet"

# apt resolves the packages' dependencies on this host (a simulation)
debs=("$(deb agkit)" "$(deb agkit-serve)" "$(deb agkit-pack)")
[ $want_cuda = yes ] && debs+=("$(deb agkit-cuda)")
check "apt-get install --simulate resolves all packages" apt-get install -s -q "${debs[@]}"

# the real dpkg, into a private root (no maintainer scripts run for these)
R=$WORK/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
: >"$R/var/lib/dpkg/status"
inst=("$(deb agkit)" "$(deb agkit-pack)")
[ $want_cuda = yes ] && inst+=("$(deb agkit-cuda)")
check "dpkg --root installs agkit, agkit-pack$([ $want_cuda = yes ] && echo ', agkit-cuda')" \
	dpkg --root="$R" --force-depends --force-not-root --log=/dev/null -i "${inst[@]}"
check "dpkg lists agkit as installed" bash -c "dpkg --root='$R' -s agkit | grep -q '^Status: install ok installed'"
check "the installed agpack starts" bash -c "'$R/usr/bin/agpack' --help 2>&1 | grep -qi usage"
md=$WORK/model
if /usr/bin/python3 "$TESTS_DIR/runtime/gen_tiny.py" llama bf16 "$md" >/dev/null 2>&1; then
	check "the installed agrun runs a model on the CPU" bash -c "'$R/usr/bin/agrun' '$md' --prompt 'the then' -n 4 --device cpu >/dev/null"
	if [ $want_cuda = yes ]; then
		"$R/usr/bin/agrun" "$md" --prompt 'the then' -n 4 --device auto >/dev/null 2>"$WORK/auto.err"
		check "without the plugin at its place, agrun --device auto names the packaged plugin path: $(cat "$WORK/auto.err")" \
			grep -q "not installed (/usr/lib/$MA/agkit/libagrt-cuda.so, package agkit-cuda)" "$WORK/auto.err"
		AGRT_CUDA_PLUGIN=$R/usr/lib/$MA/agkit/libagrt-cuda.so "$R/usr/bin/agrun" "$md" --prompt 'the then' -n 4 \
			--device auto >/dev/null 2>"$WORK/plug.err"
		check "the installed plugin loads (no GPU here, or it runs): $(cat "$WORK/plug.err")" \
			bash -c "! grep -qE 'not installed|cannot be loaded|not an agkit plugin|another version' '$WORK/plug.err'"
	fi
else
	ok "installed agrun # SKIP python3-numpy missing"
fi
check "dpkg --root removes them again" dpkg --root="$R" --force-depends --force-not-root --log=/dev/null \
	-r agkit-cuda agkit-pack agkit
check "nothing of agkit's binaries is left" bash -c "! ls '$R/usr/bin/' 2>/dev/null | grep -q ag"
done_testing

# SPDX-License-Identifier: Apache-2.0
# bash completion for agpack, agimport, agctl, agrun and agserve.
# Installed by meson install as DATADIR/bash-completion/completions/TOOL (one
# copy per tool: bash-completion loads a command's file by its name).

_agkit_words()
{
	# _agkit_words WORDS...: the candidates matching the current word.
	local cur=${COMP_WORDS[COMP_CWORD]}
	COMPREPLY=($(compgen -W "$*" -- "$cur"))
}

_agkit_files()
{
	local cur=${COMP_WORDS[COMP_CWORD]}
	COMPREPLY=($(compgen -f -- "$cur"))
}

_agkit_dirs()
{
	local cur=${COMP_WORDS[COMP_CWORD]}
	COMPREPLY=($(compgen -d -- "$cur"))
}

# The first word after the program that is not an option (and not an
# option's argument), or "".
_agkit_command()
{
	local i w
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--root | --pubkey | --key | --out | --to | --threshold | --threads | --reason | --slot | --sig | --file) ((i++)) ;;
		-*) ;;
		*) echo "$w"; return ;;
		esac
	done
}

_agpack()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	--key | --out | --cache | --ca-file | --auth-file | --base | --base-pubkey) _agkit_files; return ;;
	--volume-size | --media) _agkit_words dvd bd25 bd50 bd100 usb-fat32; return ;;
	esac
	local cmd=$(_agkit_command)
	case $cmd in
	"") _agkit_words keygen build sign sign-trust stream --help --version ;;
	keygen) _agkit_words --out --no-passphrase --force ;;
	build)
		if [[ $cur == -* ]]; then
			_agkit_words --key --out --volume-size --level --chunk-size --threads --cache --insecure-registry \
				--ca-file --auth-file --dry-run --parity --media --stream --base --base-pubkey --no-sbom --json --quiet -q
		else _agkit_files; fi ;;
	sign | sign-trust) if [[ $cur == -* ]]; then _agkit_words --key; else _agkit_files; fi ;;
	stream) _agkit_dirs ;;
	esac
}

_agimport()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	--pubkey) _agkit_files; return ;;
	--root | --to) _agkit_dirs; return ;;
	--threshold | --threads) return ;;
	esac
	local cmd=$(_agkit_command)
	case $cmd in
	"" | stage | verify | extract | inspect | receive) ;;
	*) cmd=stage ;; # agimport DIR ...: stage is the default
	esac
	case $cmd in
	"" | stage)
		if [[ $cur == -* ]]; then
			_agkit_words --root --allow-downgrade --force --wait --stream --dry-run --json --quiet -q --help --version
		elif [[ -z $cmd ]]; then
			_agkit_words stage verify extract inspect receive
			COMPREPLY+=($(compgen -d -- "$cur"))
		else _agkit_dirs; fi ;;
	verify) if [[ $cur == -* ]]; then _agkit_words --pubkey --threshold --threads --json --quiet -q; else _agkit_dirs; fi ;;
	extract) if [[ $cur == -* ]]; then _agkit_words --pubkey --threshold --threads --to --json --quiet -q; else _agkit_dirs; fi ;;
	inspect) if [[ $cur == -* ]]; then _agkit_words --json --pubkey --threshold --root --sbom; else _agkit_dirs; fi ;;
	receive) _agkit_dirs ;;
	esac
}

_agctl()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	--root) _agkit_dirs; return ;;
	--pubkey | --file | --sig) _agkit_files; return ;;
	--slot) _agkit_words blue green; return ;;
	esac
	local cmd=$(_agkit_command)
	case $cmd in
	"") if [[ $cur == -* ]]; then _agkit_words --root --wait --help --version; else
		_agkit_words init channel status promote rollback mark-good mark-bad trust audit health cycle; fi ;;
	init) _agkit_words --pubkey --threshold --channel --health-memory-mb ;;
	channel) _agkit_words set --reason ;;
	status | cycle | promote) _agkit_words --json ;;
	rollback) _agkit_words --reason --json ;;
	mark-bad) _agkit_words blue green --reason ;;
	trust) if [[ $prev == trust ]]; then _agkit_words update; elif [[ $cur == -* ]]; then _agkit_words --sig; else _agkit_files; fi ;;
	audit) if [[ $prev == audit ]]; then _agkit_words verify; else _agkit_words --file; fi ;;
	health) _agkit_words --slot --json ;;
	esac
}

_agrun()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	--device) _agkit_words cpu cuda auto; return ;;
	--tolerance-profile) _agkit_words default quantized; return ;;
	--out | --suite | --prompts | --prompt-file | --render-chat | --dump-logits) _agkit_files; return ;;
	esac
	if [[ $COMP_CWORD == 1 && $cur != -* ]]; then _agkit_words record check; COMPREPLY+=($(compgen -d -- "$cur")); return; fi
	if [[ $cur == -* ]]; then
		_agkit_words --prompt --ids -n --json --top-k --tokenize --detokenize --render-chat --template --dump-logits \
			--prompt-file --threads --ctx --no-special --skip-special --no-eos --raw --device --warmup --out \
			--prompts --suite --max-memory --tolerance-profile --version
	else _agkit_dirs; fi
}

_agserve()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	--root | --model) _agkit_dirs; return ;;
	--port-file | --api-keys | --audit | --tls-cert | --tls-key) _agkit_files; return ;;
	--device) _agkit_words cpu cuda auto; return ;;
	--suite) _agkit_files; return ;;
	esac
	if [[ ${COMP_WORDS[1]} == check ]]; then
		_agkit_words --model --suite --json --name --threads --device --help
		return
	fi
	_agkit_words check --root --model --listen --port-file --artifact --api-keys --audit --audit-content --device --threads \
		--tls-cert --tls-key --parallel --ctx --queue --max-tokens --prefill-chunk --max-body --max-connections \
		--conn-timeout --drain-timeout --help --version
}

complete -F _agpack agpack
complete -F _agimport agimport
complete -F _agctl agctl
complete -F _agrun agrun
complete -F _agserve agserve

#!/usr/bin/env bash
# bash completion (dist/vmcas.bash-completion): commands, subcommands,
# flags of each command, parcel names of the store of -s or $VMCAS_STORE.
. "$(dirname "$0")/../lib.sh"
[ -f /usr/share/bash-completion/bash_completion ] || skip_all "no bash-completion"
mkdir -p "$TMPDIR/bin"; ln -s "$VMCAS" "$TMPDIR/bin/vmcas"; export PATH="$TMPDIR/bin:$PATH"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
for p in alice-xp alice-linux bob; do
  vmcas -s "$S" parcel create $p --policy ip --memory-size 64K --disk-size 64K >/dev/null
done
# comp LINE: the completions bash offers for LINE (the cursor at its end)
comp() {
  S="$S" LINE="$1" bash -c '
    . /usr/share/bash-completion/bash_completion
    . "$TOP/dist/vmcas.bash-completion"
    COMP_LINE=$LINE; COMP_POINT=${#LINE}
    read -ra COMP_WORDS <<< "$LINE"
    [[ $LINE == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    _vmcas vmcas "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort' 2>&1
}
# has NAME LINE WORD...: every WORD is among the completions of LINE
has() { local name=$1 line=$2; shift 2; local out; out=$(comp "$line"); _n=$((_n+1))
  for w in "$@"; do grep -qxF -- "$w" <<< "$out" || { echo "not ok $_n - $name: '$w' not offered for '$line'"; sed 's/^/# /' <<< "$out" | head; _failed=1; return; }; done
  echo "ok $_n - $name"; }
hasnt() { local name=$1 line=$2; shift 2; local out; out=$(comp "$line"); _n=$((_n+1))
  for w in "$@"; do grep -qxF -- "$w" <<< "$out" && { echo "not ok $_n - $name: '$w' offered for '$line'"; _failed=1; return; }; done
  echo "ok $_n - $name"; }
export TOP
has "commands" "vmcas " init parcel checkin checkout log stat verify prune gc lease repair serve user login analyze synth
has "commands by prefix" "vmcas ch" checkin checkout
hasnt "only by prefix" "vmcas ch" stat
has "global flags" "vmcas --" --store --quiet --help --cache --no-cache
has "parcel subcommands" "vmcas -s $S parcel " create list
has "user subcommands" "vmcas -s $S user " add list remove
has "lease subcommands" "vmcas lease " show break
has "checkin flags" "vmcas -s $S checkin alice-xp --" --memory --disk --keep-lease --compress --json --help
has "checkout flags" "vmcas -s $S checkout alice-xp --" --version --memory --disk --no-lease --json
has "verify flags" "vmcas -s $S verify --" --full --reindex --json
has "serve flags" "vmcas -s $S serve --" --listen --tls-cert --tls-key --users --no-existence-oracle --threads
has "parcel create flags" "vmcas -s $S parcel create x --" --policy --chunk-size --compress --memory-size --disk-size --from
has "parcel names (-s)" "vmcas -s $S checkin " alice-xp alice-linux bob
has "parcel names by prefix" "vmcas -s $S log al" alice-xp alice-linux
hasnt "parcel names by prefix only" "vmcas -s $S log al" bob
has "parcel names after options" "vmcas -q -s $S checkout --no-lease " alice-xp bob
VMCAS_STORE=$S has "parcel names from \$VMCAS_STORE" "vmcas lease show " alice-xp bob
has "--from takes a parcel" "vmcas -s $S parcel create y --policy all --from " alice-xp bob
has "policies" "vmcas -s $S parcel create y --policy " delta ip all group:
has "compressions" "vmcas -s $S parcel create y --compress " none gzip zstd
has "checkin zstd levels" "vmcas -s $S checkin alice-xp --compress " zstd zstd:1 zstd:19
hasnt "one parcel argument only" "vmcas -s $S log bob " alice-xp
done_testing

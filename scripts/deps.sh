#!/usr/bin/env bash
# Which module of src/ uses which, and does every use run one way?
#
#   scripts/deps.sh          the module graph, then every edge that runs
#                            backwards; exit status 1 if there is one
#
# The order (docs/architecture.md, "Dependencies run one way"), left to right:
#
#   save_path, runtime -> cli, config, fastcgi -> upstream, nginx -> health, session, tls
#     -> http -> server, admin -> daemon -> check
#
# save_path (PHP's session.save_path syntax, pure) is below config, because
# `fpmlb config test` validates the save path with the checker's own parser.
# runtime (the serving threads, and which one code runs on) is a leaf: the
# pools ask it which thread asks, the server hands it connections.
#
# A module may use what is on its own level or to its left, never what is to
# its right, and two modules on one level may not use each other. A module is
# the first name under src/ (src/http/body.rs is `http`). The one exception
# is named here: `health::passive` (the failure window) and
# `health::fpm_status` (php-fpm's status page) are state that each Backend
# keeps, so upstream may use them; they are checked as leaves (level 1).
# Uses are `crate::name` paths anywhere in the code, tests included;
# comment lines are skipped. main.rs and lib.rs sit above everything.
set -euo pipefail
cd "$(dirname "$0")/.."

levels=(
    "save_path runtime"
    "cli config fastcgi health::passive health::fpm_status"
    "upstream nginx"
    "health session tls"
    "http"
    "server admin"
    "daemon"
    "check"
)

declare -A level
for i in "${!levels[@]}"; do
    for m in ${levels[$i]}; do level[$m]=$i; done
done

# The module a file belongs to, or a use points at.
module_of_file() {
    local rel=${1#src/}
    case $rel in
        health/passive.rs) echo health::passive ;;
        health/fpm_status.rs) echo health::fpm_status ;;
        */*) echo "${rel%%/*}" ;;
        *) echo "${rel%.rs}" ;;
    esac
}
module_of_use() {
    case $1 in
        crate::health::passive*) echo health::passive ;;
        crate::health::fpm_status*) echo health::fpm_status ;;
        *) local rest=${1#crate::}; echo "${rest%%::*}" ;;
    esac
}

declare -A edges    # "from to" -> first place it is seen
declare -A counts   # "from to" -> uses
unknown=0
while IFS= read -r file; do
    case $file in src/main.rs | src/lib.rs) continue ;; esac
    from=$(module_of_file "$file")
    if [[ -z ${level[$from]+x} ]]; then
        echo "unplaced module: $from ($file): add it to scripts/deps.sh"
        unknown=1
        continue
    fi
    while IFS=: read -r line path; do
        to=$(module_of_use "$path")
        # A module's own files, and health's two leaves seen from health.
        [[ $to == "$from" || ( $from == health && $to == health::* ) ]] && continue
        key="$from $to"
        counts[$key]=$(( ${counts[$key]:-0} + 1 ))
        [[ -n ${edges[$key]+x} ]] || edges[$key]="$file:$line"
    done < <(grep -n -o -E '^[^/]*crate::[a-z_]+(::[a-z_]+)?|^ *[^ /].*crate::[a-z_]+(::[a-z_]+)?' "$file" \
        | grep -v -E '^[0-9]+: *//' \
        | sed -E 's/^([0-9]+):.*(crate::[a-z_]+(::[a-z_]+)?)$/\1:\2/')
done < <(find src -name '*.rs' | sort)

echo "module graph (from -> to: uses, first at):"
bad=()
for key in $(printf '%s\n' "${!edges[@]}" | tr ' ' '>' | sort); do
    from=${key%%>*}
    to=${key##*>}
    if [[ -z ${level[$to]+x} ]]; then
        echo "unplaced module: $to (used by $from): add it to scripts/deps.sh"
        unknown=1
        continue
    fi
    mark=""
    if (( level[$to] > level[$from] )); then
        mark="  BACKWARD"
    elif (( level[$to] == level[$from] )) && [[ -n ${edges["$to $from"]+x} ]]; then
        mark="  CYCLE"
    fi
    printf '  %-18s -> %-18s %3d  %s%s\n' "$from" "$to" "${counts["$from $to"]}" "${edges["$from $to"]}" "$mark"
    [[ -z $mark ]] || bad+=("$from -> $to")
done

if (( ${#bad[@]} )); then
    echo "dependencies run backwards (${#bad[@]}): ${bad[*]}"
    exit 1
fi
(( unknown == 0 )) || exit 1
echo "ok: every use runs one way"

#!/usr/bin/env bash
# Prints the matrix's table from every row run so far and puts it in DOC
# between "<!-- matrix:begin -->" and "<!-- matrix:end -->".
#
#   table.sh RESULTS_DIR DOC
#
# A cell is "pass N" (N tests passed), "FAIL f/N", "timeout" or "-" (binary not
# run in that row), then the binary's wall time; "+s skip" counts tests that
# skipped themselves for a missing kernel feature (their reasons are listed
# below the table). The row time is the VM's wall time and, when recorded, the
# CPU time qemu used (what the row costs on an otherwise idle machine), and
# the commit the row ran (its `commit` file, written by run.sh).
#
# A binary that failed and was run again in a VM of the same kernel and layout
# after a fix (results in RESULTS_DIR/../reruns/<row>/: results.tsv and the
# commit of that run) shows both: "FAIL 1/136 → pass 136 at 7779593".
set -euo pipefail
results=$1 doc=$2
order=(5.10-v2 5.10-v1 5.10-hybrid 6.1-v2 6.1-v1 6.1-hybrid 6.12-v2 6.12-v1 6.12-hybrid)
# outcome RESULTS_TSV BINARY: "pass N", "FAIL f/N" or "TIMEOUT", then " +s skip".
outcome() {
    awk -F'\t' -v n="$2" '$1 == n {
        if ($2 == "pass") c = "pass " $3; else if ($2 == "timeout") c = "TIMEOUT"; else c = "FAIL " $4 "/" ($3 + $4)
        if ($6 > 0) c = c " +" $6 " skip"
        print c }' "$1"
}
rows=()
for r in "${order[@]}"; do if [[ -s $results/$r/results.tsv ]]; then rows+=("$r"); fi; done
table=$(mktemp)
trap 'rm -f "$table"' EXIT
{
    if [[ ${#rows[@]} -eq 0 ]]; then
        echo "No row has run yet."
    else
        printf '| test binary |'
        for r in "${rows[@]}"; do printf ' %s |' "${r/-/ · }"; done
        printf '\n|---|'
        for _ in "${rows[@]}"; do printf -- '---|'; done
        printf '\n'
        names=$(for r in "${rows[@]}"; do cut -f1 "$results/$r/results.tsv"; done | sort -u)
        for n in $names; do
            printf '| %s |' "$n"
            for r in "${rows[@]}"; do
                cell=$(outcome "$results/$r/results.tsv" "$n")
                [[ -z $cell ]] || cell="$cell, $(awk -F'\t' -v n="$n" '$1 == n { print $7 "s" }' "$results/$r/results.tsv")"
                rerun=$results/../reruns/$r
                if [[ $cell == FAIL* || $cell == TIMEOUT* ]] && [[ -s $rerun/results.tsv ]]; then
                    again=$(outcome "$rerun/results.tsv" "$n")
                    [[ -z $again ]] || cell="$cell → $again at $(head -c7 "$rerun/commit" 2>/dev/null)"
                fi
                printf ' %s |' "${cell:--}"
            done
            printf '\n'
        done
        printf '| *row time* |'
        for r in "${rows[@]}"; do
            printf ' %s min (%s' "$(( ($(cat "$results/$r/seconds" 2>/dev/null || echo 0) + 30) / 60 ))" \
                "$(cat "$results/$r/accel" 2>/dev/null || echo ?)"
            if [[ -s $results/$r/cpu-seconds ]]; then
                printf ', %s CPU-min' "$(( ($(cat "$results/$r/cpu-seconds") + 30) / 60 ))"
            fi
            printf ') |'
        done
        printf '\n'
        # Which berth the row tested: rows of one table may come from
        # different commits (a row costs most of an hour under emulation).
        printf '| *commit* |'
        for r in "${rows[@]}"; do
            c=$(cat "$results/$r/commit" 2>/dev/null || true)
            printf ' %s |' "${c:0:7}"
        done
        printf '\n'
        missing=()
        for r in "${order[@]}"; do if [[ ! -s $results/$r/results.tsv ]]; then missing+=("${r/-/ · }"); fi; done
        if [[ ${#missing[@]} -gt 0 ]]; then
            printf '\nNot run yet: %s.\n' "$(IFS=,; echo "${missing[*]}" | sed 's/,/, /g')"
        fi
        skips=$(for r in "${rows[@]}"; do
            for f in "$results/$r"/*.skips "$results/../reruns/$r"/*.skips; do
                if [[ -e $f ]]; then sed "s/^/- ${r/-/ · }: $(basename "$f" .skips): /" "$f"; fi
            done
        done | sort -u)
        if [[ -n $skips ]]; then printf '\nSkips (the kernel feature each needs):\n\n%s\n' "$skips"; fi
        kernels=$(for r in "${rows[@]}"; do
            k=${r%%-*}
            if [[ -e $results/../$k/.berth-kernel ]]; then
                echo "- $k: Debian $(cat "$results/../$k/.berth-kernel")"
            fi
        done | sort -u)
        [[ -z $kernels ]] || printf '\nKernels:\n\n%s\n' "$kernels"
    fi
} >"$table"
cat "$table"
if [[ -e $doc ]] && grep -q '<!-- matrix:begin -->' "$doc"; then
    awk -v t="$table" '
        /<!-- matrix:begin -->/ { print; while ((getline l < t) > 0) print l; skip = 1; next }
        /<!-- matrix:end -->/ { skip = 0 }
        !skip' "$doc" >"$doc.new"
    mv "$doc.new" "$doc"
fi

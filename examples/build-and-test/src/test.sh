#!/bin/sh
# Tests for rpn.sh: each line is "EXPECTED <- ARGS".
fail=0; n=0
while read -r want _ args; do
    [ -n "$want" ] || continue
    n=$((n + 1))
    got=$(sh "$(dirname "$0")/rpn.sh" $args 2>&1)
    if [ "$got" = "$want" ]; then echo "ok $n - rpn $args = $got"
    else echo "not ok $n - rpn $args: want $want, got $got"; fail=1; fi
done <<'CASES'
7 <- 3 4 +
14 <- 3 4 + 2 x
-1 <- 2 3 -
3 <- 7 2 /
1 <- 7 2 %
42 <- 6 7 x
CASES
exit $fail

#!/bin/sh
# rpn: a reverse-Polish calculator. `rpn.sh 3 4 + 2 x` prints 14.
# The "program" the build-and-test example builds, tests and packages.
stack=""
push() { stack="$stack $1"; }
pop() {
    set -- $stack
    [ $# -gt 0 ] || { echo "rpn: stack underflow" >&2; exit 1; }
    eval "top=\${$#}"
    n=$#; stack=""; i=1
    for v in "$@"; do [ $i -lt $n ] && stack="$stack $v"; i=$((i + 1)); done
}
for tok in "$@"; do
    case "$tok" in
    +|-|x|/|%)
        pop; b=$top; pop; a=$top
        case "$tok" in
        +) push $((a + b)) ;; -) push $((a - b)) ;; x) push $((a * b)) ;;
        /) [ "$b" -ne 0 ] || { echo "rpn: division by zero" >&2; exit 1; }; push $((a / b)) ;;
        %) push $((a % b)) ;;
        esac ;;
    *[!0-9-]*|'') echo "rpn: bad token '$tok'" >&2; exit 2 ;;
    *) push "$tok" ;;
    esac
done
set -- $stack
[ $# -eq 1 ] || { echo "rpn: expected one result, stack is:$stack" >&2; exit 1; }
echo "$1"

#!/bin/sh
# temp @VERSION@: convert temperatures, whole degrees, rounded towards zero.
#   temp c2f 100   -> 212
#   temp f2c 212   -> 100
# The program examples/pipeline builds, tests and packages.
case "$1" in
c2f) echo $(( $2 * 9 / 5 + 32 )) ;;
f2c) echo $(( ($2 - 32) * 5 / 9 )) ;;
--version) echo "temp @VERSION@" ;;
*) echo "usage: temp c2f|f2c DEGREES | --version" >&2; exit 2 ;;
esac

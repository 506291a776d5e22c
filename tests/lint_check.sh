#!/usr/bin/env bash
# `snakemake --lint`, failing on every lint except two that this layout accepts on purpose:
# - "Mixed rules and functions": each rules/<wf>.smk keeps its own targets function beside its
#   rules, so one workflow never needs a look at another's file;
# - the PYTHONPATH notice: common.smk sets it (it does not read a user's value).
set -uo pipefail
out=$("$1" --lint --cores 1 2>&1)
rc=$?
echo "$out" | grep -E '^\s+\* ' | grep -vE 'Mixed rules and functions|Environment variable PYTHONPATH' && {
    echo "$out"
    exit 1
}
[ $rc -eq 0 ] || echo "snakemake --lint: only the accepted lints (see tests/lint_check.sh)"
exit 0

#!/usr/bin/env bash
# `snakemake --lint`, failing on every lint except two that this layout accepts on purpose:
# - "Mixed rules and functions": each rules/<wf>.smk keeps its own targets function beside its
#   rules, so one workflow never needs a look at another's file;
# - the PYTHONPATH notice: common.smk sets it (it does not read a user's value).
# A non-zero exit of `snakemake --lint` passes only when its output is lint reports and nothing
# else: a crash (a parse error, a traceback, no lint report at all) fails.
set -uo pipefail
out=$("$1" --lint --cores 1 2>&1)
rc=$?
if echo "$out" | grep -E '^\s+\* ' | grep -vE 'Mixed rules and functions|Environment variable PYTHONPATH'; then
    echo "$out"
    exit 1
fi
[ $rc -eq 0 ] && exit 0
# Lint reports are "Lints for <file>:" headers, "    * <lint>" items and their indented text.
other=$(echo "$out" | grep -vE '^(Lints for |    \* |      |\s*$)')
if [ -n "$other" ] || ! echo "$out" | grep -q '^Lints for '; then
    echo "$out"
    echo "snakemake --lint exited $rc without a lint report: it did not lint (see above)" >&2
    exit 1
fi
echo "snakemake --lint: only the accepted lints (see tests/lint_check.sh)"
exit 0

#!/usr/bin/env bash
# lint:test-names: a Catch2 test name with a ';' is split by catch_discover_tests into names
# that match no test. Every discovered test runs with `--warn NoTests`, so such an entry now
# fails in ctest instead of passing without running anything; this lint names the cause before
# the suite runs. It reads each TEST_CASE's (or SCENARIO's, or TEST_CASE_METHOD's) name as the
# compiler does: every adjacent string literal, on one line or over several, joined. Fails
# naming file:line for each name with a ';'.
set -euo pipefail
root="${1:-$(dirname "$0")/../..}"
found=$(find "$root/tests" -name '*.cc' -print0 | sort -z | xargs -0 perl -0777 -ne '
  # The name: the first argument (the second of TEST_CASE_METHOD), adjacent literals and all.
  while (/\b(?:TEST_CASE|SCENARIO|TEST_CASE_METHOD\s*\(\s*[\w:<>]+\s*,)\s*\(?\s*((?:"(?:[^"\\\n]|\\.)*"\s*)+)/g) {
    my ($literals, $at) = ($1, $-[0]);
    my $name = join("", $literals =~ /"((?:[^"\\\n]|\\.)*)"/g);
    next unless $name =~ /;/;
    my $line = 1 + (substr($_, 0, $at) =~ tr/\n//);
    print "$ARGV:$line: \"$name\"\n";
  }
' || true)
if [[ -n "$found" ]]; then
  echo "test names with ';' (ctest would never run them):"
  echo "$found"
  exit 1
fi
echo "no test name holds a ';'"

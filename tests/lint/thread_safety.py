#!/usr/bin/env python3
"""lint:thread-safety: clang's thread-safety analysis over the project's own code.

Usage: thread_safety.py BUILD_DIR SOURCE_DIR [--jobs N] [--clang CLANG] [--all] [--only RE]

GCC ignores ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED and the other annotations of
absl/base/thread_annotations.h, and the build uses GCC. This check reads the build's
compile_commands.json (CMAKE_EXPORT_COMPILE_COMMANDS) and runs clang++-14 -fsyntax-only on
each translation unit in scope with only the thread-safety warnings on, as errors
(-Wthread-safety: analysis, attributes, precise, reference; and -Wthread-safety-beta,
without which clang 14 does not check ABSL_ACQUIRED_BEFORE / ABSL_ACQUIRED_AFTER). It fails, printing each diagnostic once, when any
translation unit draws one. It compiles nothing, so it runs after the build has made the
generated protobuf headers the sources include.

Scope: every translation unit of the daemon and the libraries it is built from (base/,
cache/, mirror/, adaptors/, daemon/), plus any translation unit of tests/, tools/ or fuzz/
whose own text names an absl::Mutex or a thread annotation (the rest include the same
headers as the product code, which are checked there, and would only double the time).
--all checks every translation unit. Never generated sources (under BUILD_DIR) or files
outside SOURCE_DIR (third-party code).

The GCC command line is reused for the include paths, definitions and language options;
warnings, debug info, outputs and GCC-only options are dropped (DROP_PREFIXES).
"""

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

PRODUCT_DIRS = ("base/", "cache/", "mirror/", "adaptors/", "daemon/")
OTHER_DIRS = ("tests/", "tools/", "fuzz/")
MENTIONS = re.compile(r"absl::Mutex|ABSL_[A-Z_]*(GUARDED|LOCK|ACQUIRE|RELEASE|CAPABILITY)")
CLANG_FLAGS = [
    "-fsyntax-only",
    "-ferror-limit=0",
    "-fno-color-diagnostics",
    "-Wno-everything",  # only what follows: the thread-safety groups
    "-Wthread-safety",
    "-Wthread-safety-beta",  # lock order: ABSL_ACQUIRED_BEFORE / ABSL_ACQUIRED_AFTER
    "-Werror=thread-safety",
    "-Werror=thread-safety-beta",
]
# Options of the GCC command that clang does not need or does not know. Matched as
# prefixes of one argument; the options that take the next argument are in DROP_WITH_ARG.
DROP_PREFIXES = (
    "-W",  # GCC's warning set (-Wall -Wextra ...): replaced by CLANG_FLAGS
    "-g",  # debug info: nothing to emit
    "-fconcepts-diagnostics-depth",
    "-fno-semantic-interposition",
    "-fstack-clash-protection",
    "-fcf-protection",
    "-fno-gnu-unique",
    "-fanalyzer",
    "-MD",
    "-MMD",
)
DROP_WITH_ARG = ("-o", "-MF", "-MT", "-MQ")
DIAGNOSTIC = re.compile(r"^(\S+?):(\d+):(\d+): (error|warning): ")
GENERATED = re.compile(r"^\d+ (errors?|warnings?)( and \d+ (errors?|warnings?))? generated\.$")


def in_scope(rel, path, everything):
    if rel.startswith(PRODUCT_DIRS):
        return True
    if not rel.startswith(OTHER_DIRS):
        return False
    if everything:
        return True
    with open(path, encoding="utf-8", errors="replace") as f:
        return MENTIONS.search(f.read()) is not None


def clang_command(entry, clang):
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out = [clang]
    skip = False
    for arg in args[1:]:
        if skip:
            skip = False
            continue
        if arg in DROP_WITH_ARG:
            skip = True
            continue
        if arg == "-c" or arg.startswith(DROP_PREFIXES):
            continue
        out.append(arg)
    return out + CLANG_FLAGS


def check(entry, clang):
    cmd = clang_command(entry, clang)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def diagnostics(output):
    """Splits clang's output into diagnostics (a first line and its notes)."""
    blocks, current = [], []
    for line in output.splitlines():
        if GENERATED.match(line):
            continue
        if DIAGNOSTIC.match(line) and current:
            blocks.append("\n".join(current))
            current = []
        if DIAGNOSTIC.match(line) or current:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("source_dir")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--clang", default="clang++-14")
    parser.add_argument("--all", action="store_true", help="every translation unit")
    parser.add_argument("--only", metavar="REGEX", help="only the units whose path matches")
    opts = parser.parse_args()

    build = os.path.realpath(opts.build_dir)
    source = os.path.realpath(opts.source_dir)
    clang = shutil.which(opts.clang)
    if clang is None:
        print(f"lint:thread-safety: {opts.clang} not found; scripts/install-deps.sh installs it")
        return 1
    db = os.path.join(build, "compile_commands.json")
    if not os.path.exists(db):
        print(f"lint:thread-safety: no {db}; configure with CMAKE_EXPORT_COMPILE_COMMANDS=ON")
        return 1
    with open(db, encoding="utf-8") as f:
        entries = json.load(f)

    units = []
    for entry in entries:
        path = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
        if path.startswith(build + os.sep) or not path.startswith(source + os.sep):
            continue  # generated, or not ours
        rel = os.path.relpath(path, source)
        if opts.only and not re.search(opts.only, rel):
            continue
        if in_scope(rel, path, opts.all):
            units.append((rel, entry))
    if not units:
        print("lint:thread-safety: no translation unit in scope (wrong directories?)")
        return 1

    start = time.monotonic()
    failed, seen, slowest = [], {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        futures = {pool.submit(check, entry, clang): rel for rel, entry in units}
        for future in concurrent.futures.as_completed(futures):
            rel = futures[future]
            code, output, seconds = future.result()
            slowest.append((seconds, rel))
            blocks = diagnostics(output)
            if code != 0 or blocks:
                failed.append(rel)
            if code != 0 and not blocks:
                blocks = [f"{rel}: clang exited {code}:\n{output.strip()}"]
            for block in blocks:
                seen.setdefault(block, []).append(rel)
    elapsed = time.monotonic() - start

    for block, where in seen.items():
        print(block)
        print(f"  (in {len(where)} translation unit(s), first {sorted(where)[0]})\n")
    slowest.sort(reverse=True)
    print(f"lint:thread-safety: {len(units)} translation units, {opts.jobs} jobs, "
          f"{elapsed:.0f} s; slowest {slowest[0][1]} ({slowest[0][0]:.1f} s)")
    if failed:
        print(f"lint:thread-safety FAILED: {len(seen)} diagnostic(s) in {len(failed)} "
              "translation unit(s) (see above; docs/threads.md has the rules)")
        return 1
    print("lint:thread-safety: no thread-safety diagnostic")
    return 0


if __name__ == "__main__":
    sys.exit(main())

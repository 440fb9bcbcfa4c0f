#!/usr/bin/env bash
# Mutation testing of the modules that compute the numbers users read (metrics, optimizer and schedule set-up,
# statistics and comparisons, splits, truncation): mutmut changes one operator, constant or call at a time and
# reruns the unit tests that cover the changed function; a mutant the tests still pass ("survived") is a change to
# the numbers that no test would notice. The modules and the tests are in setup.cfg's [mutmut] section.
#
#   bash scripts/mutation.sh            # all mutants (results kept in mutants/: a rerun tests only what changed)
#   bash scripts/mutation.sh --fresh    # forget the kept results first
#
# Not part of CI (it takes tens of minutes); one worker and one OpenMP thread, so it leaves the other core free.
# Prints the score per module (killed / mutants) and every surviving mutant; `mutmut show NAME` gives its diff.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=$VENV/bin/python

if [[ ! -x $PY ]]; then
    echo "no $VENV: run 'make setup' first" >&2
    exit 2
fi
if [[ ${1:-} == --fresh ]]; then
    rm -rf mutants
elif [[ $# -gt 0 ]]; then
    echo "usage: bash scripts/mutation.sh [--fresh]" >&2
    exit 2
fi
# The pinned mutmut of setup.cfg's `mutation` extra (its results format and options change between releases).
pin=$("$PY" -c 'import configparser; c = configparser.ConfigParser(); c.read("setup.cfg");
print(c["options.extras_require"]["mutation"].split()[0])')
if [[ $("$PY" -m pip list --format=freeze 2>/dev/null | grep -i '^mutmut==' || true) != "$pin" ]]; then
    "$PY" -m pip install -q "$pin"
fi

export OMP_NUM_THREADS=1
start=$(date +%s)
"$VENV/bin/mutmut" run --max-children 1
echo "wall time: $(( $(date +%s) - start )) s"

summarise=$(cat <<'EOF'
import collections
import sys

counts = collections.defaultdict(collections.Counter)
left = []
for line in sys.stdin:
    name, _, status = line.strip().rpartition(": ")
    if not name:
        continue
    module = name.rsplit(".", 1)[0]
    counts[module][status] += 1
    if status != "killed":
        left.append(f"  {status:10} {name}")
others = sorted({s for c in counts.values() for s in c} - {"killed"})
print(f"\n{'module':26} {'killed / all':>13}  " + "  ".join(others))
total = collections.Counter()
for module, c in sorted(counts.items()) + [("all", None)]:
    c = c if c is not None else total
    if module != "all":
        total.update(c)
    print(f"{module:26} {c['killed']:>5} / {sum(c.values()):<5}  " + "  ".join(f"{c[s]:>{len(s)}}" for s in others))
print(f"\nnot killed ({len(left)}):" if left else "\nevery mutant killed")
print("\n".join(left))
EOF
)
"$VENV/bin/mutmut" results --all true | "$PY" -c "$summarise"

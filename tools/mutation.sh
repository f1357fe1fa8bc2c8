#!/usr/bin/env bash
# Mutation testing of the core (the dispatch, options, plans, the one conversion
# path, trees and convert: see [tool.mutmut] in pyproject.toml), each mutant run
# against the fast NumPy/PyTorch tests. Not part of CI: it takes long on two cores.
#
#   tools/mutation.sh            # run, then print the score and the survivors
#   mutmut show <mutant name>    # the diff of one surviving mutant
#
# The survivors no test can kill (equivalent mutants) are listed in tests/MUTANTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
log="$(mktemp)"
rm -rf mutants
if ! mutmut run --max-children "${JOBS:-2}" >"$log" 2>&1; then
    tail -c 2000 "$log"
    exit 1
fi
mutmut export-cicd-stats >/dev/null
python - <<'PY'
import json

stats = json.load(open("mutants/mutmut-cicd-stats.json"))
killed, survived = stats["killed"], stats["survived"]
other = {k: v for k, v in stats.items() if k not in ("killed", "survived", "total") and v}
if killed + survived == 0:
    raise SystemExit(f"no mutant was tested: {stats}")
print(f"mutants: {stats['total']}, killed: {killed}, survived: {survived}, other: {other}")
print(f"mutation score: {killed / (killed + survived):.1%} ({killed}/{killed + survived})")
PY
echo "survivors:"
mutmut results

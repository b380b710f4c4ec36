#!/usr/bin/env bash
# Runs every fuzz target in turn (never two at once), each for SECONDS (default 600),
# at the lowest CPU priority, on a scratch corpus grown from the checked-in seeds.
# Prints one summary line per target (executions, coverage, features, crashes) and
# keeps each run's log in runs/TARGET.log and any crash in artifacts/TARGET/.
#   fuzz/run-all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
nice -n 19 cargo fuzz build -O >/dev/null 2>&1 || { echo "cargo fuzz build failed" >&2; exit 1; }
mkdir -p runs
for t in "${targets[@]}"; do
    mkdir -p "runs/$t"
    # -rss_limit_mb: a parser that allocates past 1 GiB on any input is a finding.
    nice -n 19 cargo fuzz run -O "$t" "runs/$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 >"runs/$t.log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "runs/$t.log" | grep -o '[0-9]*$')
    last=$(grep -E '^#[0-9]+' "runs/$t.log" | tail -1)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
    corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*$')
    crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
    echo "$t: seconds=$secs execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} crashes=$crashes exit=$rc"
done

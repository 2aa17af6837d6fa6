#!/usr/bin/env bash
# Runs each cargo-fuzz target for a given time, starting from the checked-in seeds.
#
#   fuzz/run.sh SECONDS [TARGET...]      (default: every target in fuzz/Cargo.toml)
#
# New inputs go to fuzz/corpus/<target> (not checked in); findings to fuzz/artifacts/<target>
# and make the script exit non-zero. Each target prints libFuzzer's final line (executions,
# exec/s), so a run's size can be recorded in the README. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets it use the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
if [ $# -eq 0 ]; then
    set -- $(cargo fuzz list --fuzz-dir .)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir . 2>&1 | tail -n 3
status=0
for target in "$@"; do
    mkdir -p "corpus/$target" "seeds/$target"
    echo "== $target: ${seconds}s"
    log=$(mktemp)
    if ! cargo fuzz run --fuzz-dir . "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        echo "!! $target found a failure:"
        tail -n 60 "$log"
        status=1
    fi
    grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)" "$log" || tail -n 3 "$log"
    rm -f "$log"
done
exit $status

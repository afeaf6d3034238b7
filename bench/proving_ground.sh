#!/usr/bin/env bash
# Lag on the proving ground (issue 6): `rtsync run` on the source host pushing a steady stream
# of new 10-300 KB files to three target hosts in network namespaces (two `rtsync daemon`,
# one stock `rsync --daemon`) over links with added latency; per target, the lag percentiles
# of the files' arrival (crates/cli/tests/proving_ground_lag.rs says how it is measured).
#
#   bench/proving_ground.sh                       # 500 files/s for 20 s, 50 ms round trips
#   PG_LINK="delay 50ms 10ms" bench/proving_ground.sh   # 100 ms round trips (50 ms each way)
#   PG_OUTAGE=30 PG_SECS=60 bench/proving_ground.sh      # b's link down for 30 s mid-stream
#   PG_RATE=1000 PG_SECS=10 bench/proving_ground.sh
#
# Root only. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# Line by line to the terminal and to ${PG_OUT:-/tmp/rtsync-pg-lag.txt}, so a long run's figures survive it.
cargo test --release -p rtsync --test proving_ground_lag lag_of_a_steady_stream_to_three_targets -- --ignored --exact --nocapture \
  --test-threads=1 2>&1 | grep --line-buffered -oE 'PG .*|.*panicked.*|test result.*' | tee "${PG_OUT:-/tmp/rtsync-pg-lag.txt}"

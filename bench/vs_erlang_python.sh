#!/usr/bin/env bash
# pyport beside erlang_python (the NIF), through the API both share
# (bench/bench_api.escript), runs interleaved, medians.
#   ERLANG_PYTHON_GIT=<git dir of benoitc/erlang-python> bench/vs_erlang_python.sh [BUILD] [TAG]
# erlang_python is built from TAG (default v2.3.1) in a temporary directory
# (CMake for its NIF, erlc for its modules) against the same Python as pyport;
# nothing of it is kept. RUNS (default 3) runs of each, alternating. Prints the
# table and writes it to bench/results/<date>-<commit>-erlang_python.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd); tag=${2:-v2.3.1}; runs=${RUNS:-3}
: "${ERLANG_PYTHON_GIT:?set ERLANG_PYTHON_GIT to a git dir of benoitc/erlang-python}"
python=$(sed -n 's/^Python3_EXECUTABLE:[A-Z]*=//p' "$build/CMakeCache.txt")
work=$(mktemp -d /tmp/pyport-vs-ep.XXXX); src=$work/erlang_python
mkdir -p "$src" && git --git-dir="$ERLANG_PYTHON_GIT" archive "$tag" | tar -x -C "$src"
( mkdir -p "$src/_build/cmake" && cd "$src/_build/cmake" &&
  cmake ../../c_src -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="${python:-/usr/bin/python3}" &&
  cmake --build . -j2 ) > "$work/build.log" 2>&1 || { tail -20 "$work/build.log"; exit 1; }
mkdir -p "$src/ebin"
erlc -o "$src/ebin" -I "$src/include" "$src"/src/*.erl >> "$work/build.log" 2>&1
sed 's/{vsn, *"[^"]*"}/{vsn, "'"${tag#v}"'"}/' "$src/src/erlang_python.app.src" > "$src/ebin/erlang_python.app"
for r in $(seq 1 "$runs"); do
  escript "$here/bench_api.escript" erlang_python "$src/ebin" > "$work/run${r}_ep.txt"
  escript "$here/bench_api.escript" pyport "$build/pyport/ebin" > "$work/run${r}_pyport.txt"
done
commit=$(git -C "$here" rev-parse --short HEAD)
out="$here/results/$(date -u +%F)-$commit-erlang_python.txt"
python3 - "$work" "$runs" "$tag" "$commit" <<'PY' | tee "$out"
import glob, os, platform, statistics, sys, time
work, runs, tag, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def med(kind, metric):
    vals = [float(p[3]) for f in glob.glob(f"{work}/run*_{kind}.txt") for l in open(f)
            for p in [l.split()] if len(p) == 4 and p[0] == 'RESULT' and p[2] == metric]
    return statistics.median(vals) if vals else float('nan')
rows = [("startup_ms_median", "new context to first answer (ms)"),
        ("rss_kb_per_extra_context", "memory per extra context (KiB)"),
        ("lat_p50_us", "p50 latency, 1 caller (us)"),
        ("lat_p99_us", "p99 latency, 1 caller (us)"),
        ("tput_1ctx_calls_per_s", "64 callers, 1 context (calls/s)"),
        ("tput_1ctx_cpu_us_per_call", "  CPU per call, node + OS processes (us)"),
        ("tput_default_pool_calls_per_s", "64 callers, default pool (calls/s)"),
        ("tput_default_pool_cpu_us_per_call", "  CPU per call, node + OS processes (us)"),
        ("echo_bin1mb_ms_median", "1 MiB binary round trip (ms)"),
        ("echo_list100k_ms_median", "100k-integer list round trip (ms)"),
        ("echo_map10k_ms_median", "10k-key map round trip (ms)")]
print(f"# bench/vs_erlang_python.sh: pyport {commit} beside erlang_python {tag}, "
      f"medians of {runs} interleaved runs")
print(f"# {platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} cores, "
      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}")
print(f"{'figure':44} {'erlang_python':>14} {'pyport':>12} {'pyport/ep':>10}")
for m, label in rows:
    e, p = med("ep", m), med("pyport", m)
    print(f"{label:44} {e:14.4g} {p:12.4g} {p / e if e else float('nan'):10.2f}")
print(f"raw outputs: {work}")
PY

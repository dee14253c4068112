#!/bin/sh
# bgemm_report.sh BINARY REPS: bench/results/bgemm.md's text (on stdout) from bgemm_bench runs over the
# linear layers of bench/common.lua's configs B and C (each Linear's forward x W^T (n,t), input gradient
# dY W (n,n) and weight gradient dY^T X (t,n)), at 1 thread and at 2.
set -e
binary=$1
reps=$2
# rows (batch x ctx) and n_embd; then per Linear: name, n_in, n_out
shapes() {
    rows=$1 c=$2 vocab=$3
    for linear in "qkv $c $((3 * c))" "proj $c $c" "fc $c $((4 * c))" "fc_proj $((4 * c)) $c" "head $c $vocab"; do
        set -- $linear
        printf '%s_fwd=%d,%d,%d,n,t %s_dx=%d,%d,%d,n,n %s_dW=%d,%d,%d,t,n ' "$1" "$rows" "$2" "$3" \
            "$1" "$rows" "$3" "$2" "$1" "$3" "$rows" "$2"
    done
}
echo "# bf16 GEMM (cpu_bgemm) against float32 GEMM (cpu_sgemm)"
echo
echo "Written by \`make bgemm-bench\` (bench/bgemm_bench.c, bench/bgemm_report.sh) on $(date -u +%Y-%m-%d)."
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); bf16 flags:" \
     "$(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E 'bf16|amx' | sort -u | tr '\n' ' ')"
echo "Median of $reps repeats per implementation, timed side by side; GFLOP/s = 2 M N K / median."
for config in "B 2048 384 1024" "C 1024 768 50257"; do
    set -- $config
    for threads in 1 2; do
        echo
        echo "## Config $1 (rows $2, n_embd $3, vocab $4), $threads thread(s)"
        echo
        "$binary" "$threads" "$reps" $(shapes "$2" "$3" "$4")
    done
done

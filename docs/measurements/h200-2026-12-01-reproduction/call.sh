#!/bin/bash
# One device call of the reproduction: gpu/call.sh NAME DEADLINE_S WORKERS [PREV_NAME]
# PREV_NAME: gpu/prev/PREV_NAME.tgz.part* (a tar of a previous job folder PREV_NAME/).
set -u
name=$1; deadline=$2; workers=$3; prevname=${4:-}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
gunzip -c gpu/bin/icl-lab.gz > /tmp/icl && chmod +x /tmp/icl
nproc; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mpslog
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
[ "${MPS:-0}" = 1 ] && nvidia-cuda-mps-control -d && echo "MPS on"
prev=""
if [ -n "$prevname" ] && [ -d /tmp/out/$prevname ]; then
    prev=/tmp/out/$prevname   # the same machine, still warm: the last job's folder is here
elif [ -n "$prevname" ]; then
    mkdir -p /tmp/prev && cat gpu/prev/$prevname.tgz.part* | tar xz -C /tmp/prev && prev=/tmp/prev/$prevname
    echo "prev: $(wc -l < $prev/done.txt) done, $(ls $prev/bundles | wc -l) bundles"
fi
job=/tmp/out/$name; mkdir -p $job
nvidia-smi dmon -s u -d 5 > $job/dmon.txt 2>&1 &
( sleep 150; top -b -n1 -w 200 > $job/top.txt; ps -eLo pid,psr,pcpu,comm --sort=-pcpu | head -60 > $job/threads.txt ) &
GRID="${GRID:-experiments/paper/reduced experiments/paper/long}" CORES_PER_RUN=${CORES_PER_RUN:-2} \
  timeout -s KILL $((deadline + 45)) bash experiments/paper/gpu-job.sh /tmp/icl $job $deadline $workers $prev
[ -n "$prev" ] && [ ! -s $job/done.txt ] && cp $prev/done.txt $job/done.txt
# Carry forward the bundles of earlier jobs that this one did not replace (runs not reached).
if [ -n "$prev" ]; then for b in $prev/bundles/*.bundle; do [ -e $job/bundles/$(basename $b) ] || cp $b $job/bundles/; done; fi
echo quit | nvidia-cuda-mps-control 2>/dev/null
kill %1 2>/dev/null
steps=0; for f in $job/logs/*.err; do s=$(grep -o 'step [0-9]*' $f | tail -1 | grep -o '[0-9]*'); steps=$((steps + ${s:-0})); done
echo "$name: last logged steps summed over runs: $steps; done: $(wc -l < $job/done.txt); bundles: $(ls $job/bundles | wc -l)"
tar czf - -C /tmp/out $name | split -b 15M - $OUT/$name.tgz.part
ls -la $OUT

# Sourced by the benchmark scripts: CPU time of processes, from /proc/PID/stat (utime + stime).

# CPU seconds used so far by the process PID.
cpu_of_pid() {
  awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# CPU seconds used so far by every live process named $1 (RabbitMQ runs as beam.smp). A process
# that started or ended in between is counted for the part of its life that is seen.
cpu_of() {
  local total=0 pid
  for pid in $(pgrep -x "$1"); do
    total=$(echo "$total + $(cpu_of_pid "$pid")" | bc -l)
  done
  echo "$total"
}

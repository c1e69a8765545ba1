// CPU and memory of a process from /proc (Linux), and the generator's own CPU share.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks = 0;
function ticksPerSecond() {
  if (clockTicks === 0) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process, in milliseconds; NaN when unreadable. */
export function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond();
  } catch {
    return Number.NaN;
  }
}

/** VmRSS in KiB; NaN when unreadable. */
export function rssKiB(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? Number.NaN : Number(m[1]);
  } catch {
    return Number.NaN;
  }
}

/** Read and write system calls of a process so far ({ reads, writes }); NaN when unreadable. */
export function syscalls(pid) {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const reads = /^syscr:\s+(\d+)/m.exec(io);
    const writes = /^syscw:\s+(\d+)/m.exec(io);
    return { reads: Number(reads?.[1] ?? Number.NaN), writes: Number(writes?.[1] ?? Number.NaN) };
  } catch {
    return { reads: Number.NaN, writes: Number.NaN };
  }
}

/**
 * Nanoseconds the process's main thread has spent running and waiting on a run queue (/proc/PID/schedstat:
 * a thread that is runnable but not running waits there). NaN when unreadable.
 */
export function schedNs(pid) {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { run, wait };
  } catch {
    return { run: Number.NaN, wait: Number.NaN };
  }
}

/**
 * Measures a time window: wall time, this process's CPU share (process.cpuUsage over wall time, 1 = one core)
 * the broker's CPU (from /proc/PID/stat) and its read/write system calls (from /proc/PID/io).
 */
export function startWindow(brokerPid) {
  const wall0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const broker0 = cpuMs(brokerPid);
  const io0 = syscalls(brokerPid);
  const sched0 = schedNs(brokerPid);
  const gsched0 = schedNs(process.pid);
  return () => {
    const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
    const cpu = process.cpuUsage(cpu0);
    const brokerCpuMs = cpuMs(brokerPid) - broker0;
    const io = syscalls(brokerPid);
    const sched = schedNs(brokerPid);
    const gsched = schedNs(process.pid);
    return {
      // Share of the window the broker's main thread was runnable but waiting for its core (other processes
      // on that core), and running + waiting: near 1 the (event-loop or only) thread had work all the time,
      // i.e. the broker ran at its capacity. (brokerCpu counts every thread: a Node broker's GC and I/O
      // threads too.)
      brokerWait: (sched.wait - sched0.wait) / 1e6 / wallMs,
      brokerBusy: (sched.run - sched0.run + sched.wait - sched0.wait) / 1e6 / wallMs,
      generatorWait: (gsched.wait - gsched0.wait) / 1e6 / wallMs,
      brokerReads: io.reads - io0.reads,
      brokerWrites: io.writes - io0.writes,
      wallMs,
      generatorCpu: (cpu.user + cpu.system) / 1000 / wallMs,
      brokerCpuMs,
      brokerCpu: brokerCpuMs / wallMs,
    };
  };
}

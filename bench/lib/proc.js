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
 * Measures a time window: wall time, this process's CPU share (process.cpuUsage over wall time, 1 = one core)
 * the broker's CPU (from /proc/PID/stat) and its read/write system calls (from /proc/PID/io).
 */
export function startWindow(brokerPid) {
  const wall0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const broker0 = cpuMs(brokerPid);
  const io0 = syscalls(brokerPid);
  return () => {
    const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
    const cpu = process.cpuUsage(cpu0);
    const brokerCpuMs = cpuMs(brokerPid) - broker0;
    const io = syscalls(brokerPid);
    return {
      brokerReads: io.reads - io0.reads,
      brokerWrites: io.writes - io0.writes,
      wallMs,
      generatorCpu: (cpu.user + cpu.system) / 1000 / wallMs,
      brokerCpuMs,
      brokerCpu: brokerCpuMs / wallMs,
    };
  };
}

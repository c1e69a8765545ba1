/**
 * `LOG_FORMAT=pretty`: the same pino log lines, written for a person at a terminal instead of a log
 * collector: `12:01:02.345 INFO  [tls] TLS certificate loaded  listener=mqtts:8883 notAfter=...`. The JSON
 * lines stay the default (and what the container should emit); this is a destination, not another logger,
 * so redaction and levels are exactly those of the JSON output.
 */
import { writeSync } from 'node:fs';
import type { DestinationStream } from 'pino';

const SKIP = new Set(['level', 'time', 'msg', 'name', 'component', 'pid', 'hostname']);
const COLOURS: Record<string, string> = { fatal: '\x1b[35m', error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[32m', debug: '\x1b[36m', trace: '\x1b[90m' };

function show(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** One pino JSON line as one readable line (falls back to the line itself when it is not JSON). */
export function prettyLine(line: string, colour = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : '';
  const level = String(entry.level ?? '');
  const label = level.toUpperCase().padEnd(5);
  const component = typeof entry.component === 'string' ? ` [${entry.component}]` : '';
  const fields = Object.entries(entry)
    .filter(([key]) => !SKIP.has(key))
    .map(([key, value]) => `${key}=${show(value)}`)
    .join(' ');
  const start = colour ? `${COLOURS[level] ?? ''}${label}\x1b[0m` : label;
  return `${time} ${start}${component} ${String(entry.msg ?? '')}${fields === '' ? '' : `  ${fields}`}`;
}

/** A synchronous destination writing pretty lines to `fd` (stdout by default), coloured on a terminal. */
export function prettyDestination(fd = 1, colour = fd === 1 ? process.stdout.isTTY === true : false): DestinationStream {
  return {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line !== '') writeSync(fd, `${prettyLine(line, colour)}\n`);
    },
  };
}

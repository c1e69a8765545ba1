import { pino, type Logger, type DestinationStream } from 'pino';
import { prettyDestination } from './log-pretty.js';

/** Paths that may carry secrets anywhere in a log object; pino replaces their values. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'apiToken',
  '*.apiToken',
  'apiKey',
  '*.apiKey',
  'accountKey',
  '*.accountKey',
  'privateKey',
  '*.privateKey',
  'authorization',
  '*.authorization',
  'headers["x-auth-key"]',
  '*.headers["x-auth-key"]',
  'acme.cloudflare.apiToken',
  'acme.cloudflare.apiKey',
  '*.acme.cloudflare.apiToken',
  '*.acme.cloudflare.apiKey',
  'cloudflare.apiToken',
  'cloudflare.apiKey',
];

export type { Logger };

/** `json` (the default: one pino JSON line per event) or `pretty` (for a person at a terminal). */
export type LogFormat = 'json' | 'pretty';

/** The log format asked for by `LOG_FORMAT`; anything but `pretty` is JSON. */
export function logFormatFrom(env: NodeJS.ProcessEnv): LogFormat {
  return env.LOG_FORMAT?.trim().toLowerCase() === 'pretty' ? 'pretty' : 'json';
}

export function createLogger(level: string = 'info', destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  return pino(
    {
      level,
      base: { name: 'mqtt-acme-broker' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Synchronous: lines are per connection, not per message, and none may be lost at exit.
    destination ?? (format === 'pretty' ? prettyDestination() : pino.destination({ sync: true })),
  );
}

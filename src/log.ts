import { pino, type Logger, type DestinationStream } from 'pino';

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

export function createLogger(level: string = 'info', destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: 'mqtt-acme-broker' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Synchronous: lines are per connection, not per message, and none may be lost at exit.
    destination ?? pino.destination({ sync: true }),
  );
}

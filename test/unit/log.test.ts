import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { LogCapture } from '../support/broker.js';

describe('logger redaction', () => {
  it('never writes secrets that sit under the known paths', () => {
    const out = new LogCapture();
    const log = createLogger('info', out);
    log.info({ password: 'pw-1', config: { acme: { cloudflare: { apiToken: 'tok-2', apiKey: 'key-3' } } } }, 'x');
    log.info({ acme: { cloudflare: { apiToken: 'tok-4' } }, headers: { 'x-auth-key': 'key-5' }, authorization: 'Bearer tok-6' }, 'y');
    const text = out.text();
    for (const secret of ['pw-1', 'tok-2', 'key-3', 'tok-4', 'key-5', 'tok-6']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });
});

describe('LOG_FORMAT=pretty', () => {
  it('is asked for by LOG_FORMAT=pretty only; anything else is JSON', async () => {
    const { logFormatFrom } = await import('../../src/log.js');
    expect(logFormatFrom({ LOG_FORMAT: 'pretty' })).toBe('pretty');
    expect(logFormatFrom({ LOG_FORMAT: ' Pretty ' })).toBe('pretty');
    expect(logFormatFrom({ LOG_FORMAT: 'json' })).toBe('json');
    expect(logFormatFrom({})).toBe('json');
  });

  it('turns a pino line into one readable line with time, level, component, message and the other fields, redaction kept', async () => {
    const { prettyLine } = await import('../../src/log-pretty.js');
    const out = new LogCapture();
    createLogger('info', out).child({ component: 'tls' }).info({ listener: 'mqtts:8883', names: ['a', 'b'], password: 'pw', note: 'two words' }, 'TLS certificate loaded');
    const line = prettyLine(out.raw[0]!);
    expect(line).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO {2}\[tls\] TLS certificate loaded {2}listener=mqtts:8883 names=\["a","b"\] password=\[redacted\] note="two words"$/);
    expect(line).not.toContain('pw"');
    expect(prettyLine('not json')).toBe('not json');
    expect(prettyLine(out.raw[0]!, true)).toContain('\x1b[32mINFO ');
  });
});

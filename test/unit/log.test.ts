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

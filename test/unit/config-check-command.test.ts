import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigCommand } from '../../src/commands/check-config.js';
import type { Config } from '../../src/config/schema.js';
import { createTestPki } from '../support/tls.js';

// Written by mosquitto_passwd 2.0.11 (FACTS.md): cam / s3cret.
const CAM7 = 'cam:$7$101$0eyo1LK2tTCkVyoE$TfD+UAkPpXvqGbA1d0owxs3bAfGUY7jCKfITOwTk3Or6LAiHgKPAC4ABTZO9xtw478xwXp1iy9HLT0J0Nx2pBg==';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await checkConfigCommand(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env,
    cwd,
    defaults: { mosquittoConf: null, passwordFile: null },
  });
  return { code, stdout, stderr };
}

/** A working directory with a TLS listener, users and ACL, as mosquitto.conf. */
async function workspace(extraConf = ''): Promise<{ dir: string; certFile: string; keyFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mab-check-'));
  const pki = await createTestPki(dir);
  const { certFile, keyFile } = await pki.issue(['localhost'], 'server');
  await writeFile(join(dir, 'passwd'), `${CAM7}\n`);
  await writeFile(join(dir, 'acl'), 'user cam\ntopic readwrite cameras/#\n');
  await writeFile(
    join(dir, 'mosquitto.conf'),
    `password_file passwd\nacl_file acl\nlistener 8883\ncertfile ${certFile}\nkeyfile ${keyFile}\ncafile ${pki.caFile}\n${extraConf}`,
  );
  return { dir, certFile, keyFile };
}

/** Every 4-character piece of `secret`: none of them may appear in the output. */
function pieces(secret: string): string[] {
  return Array.from({ length: secret.length - 3 }, (_, i) => secret.slice(i, i + 4));
}

describe('check-config', () => {
  it('prints the effective configuration as JSON and exits 0 when everything is usable', async () => {
    const w = await workspace();
    const r = await run(['-c', 'mosquitto.conf'], { LOG_LEVEL: 'debug' }, w.dir);
    expect(r.stderr).not.toContain('error:');
    expect(r.code).toBe(0);
    const config = JSON.parse(r.stdout) as Config;
    expect(config.listeners).toEqual([
      { port: 8883, protocol: 'mqtt', certfile: w.certFile, keyfile: w.keyFile, cafile: join(w.dir, 'ca.pem'), requireCertificate: false, selfSigned: false },
    ]);
    expect(config.passwordFile).toBe(join(w.dir, 'passwd'));
    expect(config.logLevel).toBe('debug');
    expect(r.stderr).toMatch(/configuration OK/);
  });

  it.each([
    ['CLOUDFLARE_API_TOKEN', { CLOUDFLARE_API_TOKEN: 'Vq3kP9xZr7LmT2wY8sDf' }],
    ['CLOUDFLARE_KEY', { CLOUDFLARE_KEY: 'b51c0e7a94d2f83e6a1c5b9d07f4e2a3c8d16', CLOUDFLARE_EMAIL: 'cf@example.com' }],
  ])('never prints any part of %s, also not when the value had the echo newline', async (name, creds) => {
    const w = await workspace();
    const secret = (creds as Record<string, string>)[name] as string;
    const env = { ...creds, [name]: `${secret}\n`, DOMAIN: '*.example.com' };
    const r = await run(['-c', 'mosquitto.conf'], env, w.dir);
    expect(r.code).toBe(0);
    const config = JSON.parse(r.stdout) as Config;
    expect(Object.values(config.acme.cloudflare)).toContain('****');
    expect(r.stderr).toContain(`warning: ${name}: surrounding whitespace/newline removed`);
    for (const piece of pieces(secret)) {
      expect(r.stdout).not.toContain(piece);
      expect(r.stderr).not.toContain(piece);
    }
  });

  it('does not print a secret in an error either', async () => {
    const w = await workspace();
    const secret = 'Hq7Zt2Lp9Xw4Rk8M';
    const r = await run(['-c', 'mosquitto.conf'], { CLOUDFLARE_API_TOKEN: `${secret}\u0007`, DOMAIN: 'example.com' }, w.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: env CLOUDFLARE_API_TOKEN: .*control character/m);
    for (const piece of pieces(secret)) expect(r.stdout + r.stderr).not.toContain(piece);
  });

  it('prints warnings (unsupported directives, password file entries) and still exits 0', async () => {
    const w = await workspace('autosave_interval 60\n');
    await writeFile(join(w.dir, 'passwd'), `${CAM7}\nbroken line\n`);
    const r = await run(['-c', 'mosquitto.conf'], {}, w.dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`warning: ${join(w.dir, 'mosquitto.conf')}:7: autosave_interval: not supported`);
    expect(r.stderr).toMatch(/warning: .*passwd:2: /);
  });

  it('a configuration error: "error: <source>: <problem>" on stderr, nothing on stdout, exit 1', async () => {
    const w = await workspace('allow_anonymous perhaps\n');
    const r = await run(['-c', 'mosquitto.conf'], {}, w.dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`error: ${join(w.dir, 'mosquitto.conf')}:7: allow_anonymous: invalid value "perhaps"; use true or false (lower case, as mosquitto requires)\n`);
  });

  it('a bridge is an error that says bridges are not supported yet, naming the line; exit 1', async () => {
    const w = await workspace('connection cloud\naddress mqtt.example.com:8883\ntopic # out 1\n');
    const r = await run(['-c', 'mosquitto.conf'], {}, w.dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^error: ${join(w.dir, 'mosquitto.conf')}:7: connection: bridges are not supported yet`, 'm'));
  });

  it('prints e-mail addresses (personal data) by their domain only', async () => {
    const w = await workspace();
    const env = { DOMAIN: 'example.com', EMAIL: 'jane.doe@example.org', CLOUDFLARE_KEY: 'b51c0e7a94d2f83e', CLOUDFLARE_EMAIL: 'cf-owner@example.net' };
    const r = await run(['-c', 'mosquitto.conf'], env, w.dir);
    expect(r.code).toBe(0);
    const config = JSON.parse(r.stdout) as Config;
    expect(config.acme.email).toBe('****@example.org');
    expect(config.acme.cloudflare.email).toBe('****@example.net');
    expect(r.stdout + r.stderr).not.toMatch(/jane|doe|cf-owner/);
  });

  it('a missing password file is an error naming the file and where it was configured', async () => {
    const w = await workspace();
    await writeFile(join(w.dir, 'mosquitto.conf'), 'password_file nothere\nlistener 1883\n');
    const missing = await run(['-c', 'mosquitto.conf'], {}, w.dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`error: ${join(w.dir, 'mosquitto.conf')}:1: password_file: cannot read the password file ${join(w.dir, 'nothere')} (ENOENT)`);
    expect(missing.stdout).toBe('');
  });

  it('a password file without one valid entry, and a bad ACL line, are errors', async () => {
    const w = await workspace();
    await writeFile(join(w.dir, 'passwd'), 'cam:plaintext\n');
    const passwd = await run(['-c', 'mosquitto.conf'], {}, w.dir);
    expect(passwd.code).toBe(1);
    expect(passwd.stderr).toMatch(/error: .*passwd: no valid entry/);
    await writeFile(join(w.dir, 'passwd'), `${CAM7}\n`);
    await writeFile(join(w.dir, 'acl'), 'user cam\ntopic sometimes cameras/#\n');
    const acl = await run(['-c', 'mosquitto.conf'], {}, w.dir);
    expect(acl.code).toBe(1);
    expect(acl.stderr).toContain(`error: ${join(w.dir, 'acl')}:2: invalid access "sometimes"`);
  });

  it('a key that does not belong to the certificate, or a file that is no PEM, is an error', async () => {
    const w = await workspace();
    const other = await (await createTestPki()).issue(['localhost']);
    await writeFile(w.keyFile, other.key);
    const mismatch = await run(['-c', 'mosquitto.conf'], {}, w.dir);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/error: .*:5: keyfile: .* is not the private key of the certificate/);
    await writeFile(w.certFile, 'not a certificate\n');
    const notPem = await run(['-c', 'mosquitto.conf'], {}, w.dir);
    expect(notPem.code).toBe(1);
    expect(notPem.stderr).toMatch(/error: .*:4: certfile: .* holds no PEM certificate/);
  });

  it('reads --config and --config=FILE, and refuses unknown arguments', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-check-'));
    await writeFile(join(dir, 'c.json'), JSON.stringify({ listeners: [{ port: 1883 }], allowAnonymous: true }));
    const a = await run(['--config', 'c.json'], {}, dir);
    const b = await run(['--config=c.json'], {}, dir);
    expect(a.code).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect((JSON.parse(a.stdout) as Config).allowAnonymous).toBe(true);
    const bad = await run(['--verbose'], {}, dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('error: unknown argument "--verbose"');
    const noValue = await run(['-c'], {}, dir);
    expect(noValue.code).toBe(1);
    expect(noValue.stderr).toContain('error: -c needs a file name');
  });
});

#!/usr/bin/env node
/**
 * The command line: `serve` (default), `passwd` (like mosquitto_passwd), `check-config`.
 */
import { packageVersion } from './version.js';

const USAGE = `Usage:
  mqtt-acme-broker [serve] [-c mosquitto.conf] [--config config.json]
  mqtt-acme-broker passwd [-c | -D] [-b] [-U] [-H sha512 | sha512-pbkdf2 | bcrypt] [-I iterations] FILE USER [PASSWORD]
  mqtt-acme-broker check-config [-c mosquitto.conf] [--config config.json]
  mqtt-acme-broker --version

With no -c, /mosquitto/conf/mosquitto.conf (and /mosquitto/conf/passwd) are used when they exist.
Environment: DOMAIN, EMAIL, CLOUDFLARE_API_TOKEN or CLOUDFLARE_EMAIL + CLOUDFLARE_KEY, TESTCERT, LOG_FORMAT=pretty, ... (see README).
Signals: SIGTERM/SIGINT stop cleanly; SIGHUP reloads passwd, ACL, certificates and the configuration.
`;

async function serve(argv: string[]): Promise<number> {
  const { serveCommand } = await import('./commands/serve.js');
  return serveCommand(argv, { env: process.env, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr, usage: USAGE });
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  switch (first) {
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case '--version':
    case '-V':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case 'passwd': {
      const { passwdCommand } = await import('./commands/passwd.js');
      return passwdCommand(rest, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, isTTY: process.stdin.isTTY === true });
    }
    case 'check-config': {
      const { checkConfigCommand } = await import('./commands/check-config.js');
      return checkConfigCommand(rest, { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() });
    }
    case 'serve':
      return serve(rest);
    default:
      return serve(argv);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Anything still holding the event loop after a clean stop is a bug; don't hang the container.
    if (code === 0 || code === 1) setTimeout(() => process.exit(code), 500).unref();
  },
  (err: unknown) => {
    process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

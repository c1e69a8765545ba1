#!/usr/bin/env node
/**
 * The command line: `serve` (default), `passwd` (like mosquitto_passwd), `check-config`.
 */
import { packageVersion } from './version.js';
import { createLogger, type Logger } from './log.js';
import { loadConfig } from './config/load.js';
import { maskSecrets, parseConfigArgs } from './commands/check-config.js';

const USAGE = `Usage:
  mqtt-acme-broker [serve] [-c mosquitto.conf] [--config config.json]
  mqtt-acme-broker passwd [-c | -D] [-b] [-U] [-H sha512 | sha512-pbkdf2 | bcrypt] [-I iterations] FILE USER [PASSWORD]
  mqtt-acme-broker check-config [-c mosquitto.conf] [--config config.json]
  mqtt-acme-broker --version

With no -c, /mosquitto/conf/mosquitto.conf (and /mosquitto/conf/passwd) are used when they exist.
Environment: DOMAIN, EMAIL, CLOUDFLARE_API_TOKEN or CLOUDFLARE_EMAIL + CLOUDFLARE_KEY, TESTCERT, ... (see README).
`;

const version = packageVersion;

async function serve(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseConfigArgs>;
  try {
    args = parseConfigArgs(argv);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const bootLog = createLogger(process.env.LOG_LEVEL ?? 'info');
  let loaded: Awaited<ReturnType<typeof loadConfig>>;
  try {
    loaded = await loadConfig({ mosquittoConf: args.mosquittoConf, configJson: args.configJson, env: process.env, cwd: process.cwd() });
  } catch (err) {
    bootLog.fatal({ error: (err as Error).message }, 'configuration error; not starting');
    return 1;
  }
  const { config } = loaded;
  const logger: Logger = createLogger(config.logLevel);
  for (const warning of loaded.warnings) logger.warn(warning);
  for (const note of loaded.notes ?? []) logger.info(note);
  logger.info({ version: version(), node: process.version, config: maskSecrets(config) }, 'starting mqtt-acme-broker');

  const { startBroker } = await import('./main.js');
  let running: Awaited<ReturnType<typeof startBroker>>;
  try {
    running = await startBroker(config, logger);
  } catch (err) {
    logger.fatal({ error: (err as Error).message }, 'could not start');
    return 1;
  }

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting at once');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal, clients: running.broker.connectedClients }, 'shutting down: closing listeners, disconnecting clients, flushing persistence');
      const deadline = setTimeout(() => {
        logger.error('shutdown took longer than 10 s; exiting anyway');
        process.exit(1);
      }, 9_500);
      deadline.unref();
      running.close().then(
        () => {
          logger.info('stopped');
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ error: (err as Error).message }, 'error during shutdown');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
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
      process.stdout.write(`${version()}\n`);
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

/**
 * `mqtt-acme-broker [serve] [-c mosquitto.conf] [--config config.json]`: load the configuration, start the
 * server, and run the process the way mosquitto users expect:
 * - SIGTERM / SIGINT: close the listeners, disconnect clients, flush persistence, exit 0 within 10 s
 *   (a second signal exits at once);
 * - SIGHUP: read the password, ACL and certificate files and the configuration files again, apply what can
 *   change live, log what was reloaded and what needs a restart; never stop;
 * - an edited mosquitto.conf or config.json (also a swapped ConfigMap) is picked up like a SIGHUP.
 */
import { packageVersion } from '../version.js';
import { createLogger, logFormatFrom, type Logger } from '../log.js';
import { loadConfigIsolated, type IsolatedLoad } from '../config/isolated.js';
import { watchAndReload, type Reloader } from '../files/watch.js';
import type { RunningServer } from '../server/start.js';
import { parseConfigArgs } from './config-args.js';

export interface ServeIo {
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  usage: string;
}

/** Longest a clean shutdown may take before the process exits anyway (Kubernetes waits 30 s by default). */
const SHUTDOWN_DEADLINE_MS = 9_500;

export async function serveCommand(argv: string[], io: ServeIo): Promise<number> {
  let args: ReturnType<typeof parseConfigArgs>;
  try {
    args = parseConfigArgs(argv);
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n\n${io.usage}`);
    return 2;
  }
  if (args.help === true) {
    io.stdout.write(io.usage);
    return 0;
  }
  const format = logFormatFrom(io.env);
  const bootLog = createLogger(io.env.LOG_LEVEL ?? 'info', undefined, format);
  const options = { mosquittoConf: args.mosquittoConf, configJson: args.configJson, env: io.env, cwd: io.cwd };
  let loaded: IsolatedLoad;
  try {
    loaded = await loadConfigIsolated({ options });
  } catch (err) {
    bootLog.fatal({ error: (err as Error).message }, 'configuration error; not starting');
    return 1;
  }
  const { config } = loaded;
  const logger: Logger = createLogger(config.logLevel, undefined, format);
  for (const warning of loaded.warnings) logger.warn(warning);
  for (const note of loaded.notes) logger.info(note);
  logger.info({ version: packageVersion(), node: process.version, config: loaded.masked }, 'starting mqtt-acme-broker');

  const { startServer } = await import('../server/start.js');
  let running: RunningServer;
  try {
    running = await startServer(config, logger);
  } catch (err) {
    logger.fatal({ error: (err as Error).message }, 'could not start');
    return 1;
  }

  const configLog = logger.child({ component: 'config' });
  /** Load the configuration files again; a broken one keeps the running configuration and says why. */
  const reconfigure = async (trigger: string): Promise<void> => {
    let next: IsolatedLoad;
    try {
      next = await loadConfigIsolated({ options, previous: config });
    } catch (err) {
      configLog.error({ trigger, error: (err as Error).message }, 'the changed configuration is not valid; keeping the running one');
      return;
    }
    await running.reconfigure(next.config, next.change ?? { live: [], restart: [] }, next.liveKeys);
  };
  let configWatch: Reloader | undefined;
  const configFiles = [loaded.sources.mosquittoConf, loaded.sources.configJson].filter((f): f is string => f !== undefined);
  if (configFiles.length > 0) {
    configWatch = watchAndReload({ files: configFiles, load: () => reconfigure('file changed'), onLoad: () => undefined, logger: configLog, what: 'configuration' });
  }

  let reloading = Promise.resolve();
  const onHangup = (): void => {
    reloading = reloading.then(async () => {
      logger.info({ signal: 'SIGHUP' }, 'SIGHUP: reloading the password, ACL and certificate files and the configuration');
      try {
        const reloaded = await running.reload();
        await reconfigure('SIGHUP');
        logger.info({ signal: 'SIGHUP', reloaded }, `SIGHUP: reloaded ${reloaded.length === 0 ? 'nothing (see the lines above)' : reloaded.join(', ')}`);
      } catch (err) {
        logger.error({ signal: 'SIGHUP', error: (err as Error).message }, 'SIGHUP: reloading failed; the broker keeps running with what it had');
      }
    });
  };
  process.on('SIGHUP', onHangup);

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting at once');
        process.exit(1);
      }
      stopping = true;
      process.off('SIGHUP', onHangup);
      configWatch?.close();
      logger.info({ signal, clients: running.broker.connectedClients }, 'shutting down: closing listeners, disconnecting clients, flushing persistence');
      const deadline = setTimeout(() => {
        logger.error(`shutdown took longer than ${SHUTDOWN_DEADLINE_MS / 1000} s; exiting anyway`);
        process.exit(1);
      }, SHUTDOWN_DEADLINE_MS);
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

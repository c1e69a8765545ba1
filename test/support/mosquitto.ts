/**
 * Debian's mosquitto (/usr/sbin/mosquitto) as a reference broker for tests: started with the given
 * configuration on a free loopback port, ready once it accepts TCP connections, stopped by stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

/** Whether the reference broker is installed (CI has it; tests skip with a reason when it is not). */
export function mosquittoAvailable(): boolean {
  return existsSync(MOSQUITTO_BIN);
}

export interface MosquittoOptions {
  /**
   * The whole mosquitto.conf. A function is given the chosen port; in a string, `{{port}}` is replaced by
   * it. When the text has no `listener` line, `listener PORT 127.0.0.1` is put first. When it has no `user`
   * line, one naming the current user is added (as root, mosquitto would otherwise switch to the
   * `mosquitto` user, which cannot read files in a private temp directory). `log_dest stderr` is added
   * when the text has no `log_dest`, so that the logs are captured.
   */
  conf: string | ((port: number) => string);
  /** Directory for mosquitto.conf (default: a new temp directory, removed by stop()). */
  dir?: string;
  /** How long to wait for the port to accept connections (default 10 s). */
  startTimeoutMs?: number;
}

export interface RunningMosquitto {
  host: '127.0.0.1';
  port: number;
  dir: string;
  confFile: string;
  /** Everything mosquitto logged so far. */
  logs(): string;
  /** SIGHUP: mosquitto reloads password_file, acl_file and most settings. */
  reload(): void;
  /** SIGTERM, then wait for the exit (SIGKILL after 5 s). Safe to call twice. */
  stop(): Promise<void>;
}

/** A port that was free on 127.0.0.1 a moment ago. */
import { freePort } from './ports.js';

export { freePort };

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function confText(conf: MosquittoOptions['conf'], port: number): string {
  let text = typeof conf === 'function' ? conf(port) : conf.replaceAll('{{port}}', String(port));
  if (!/^\s*listener\s/m.test(text)) text = `listener ${port} 127.0.0.1\n${text}`;
  if (!text.endsWith('\n')) text += '\n';
  if (!/^\s*user\s/m.test(text)) text += `user ${userInfo().username}\n`;
  if (!/^\s*log_dest\s/m.test(text)) text += 'log_dest stderr\n';
  return text;
}

async function startOnce(options: MosquittoOptions, dir: string, port: number): Promise<RunningMosquitto | 'port-taken'> {
  const confFile = join(dir, 'mosquitto.conf');
  await writeFile(confFile, confText(options.conf, port));
  const child: ChildProcess = spawn(MOSQUITTO_BIN, ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout?.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (logs += d.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  for (;;) {
    if (exited) {
      process.off('exit', killOnExit);
      if (/Address already in use/i.test(logs)) return 'port-taken';
      throw new Error(`mosquitto exited during start (exit code ${child.exitCode ?? 'none'}):\n${logs}`);
    }
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exit;
      process.off('exit', killOnExit);
      throw new Error(`mosquitto did not listen on 127.0.0.1:${port} in time:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  let stopping: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    dir,
    confFile,
    logs: () => logs,
    reload: () => {
      child.kill('SIGHUP');
    },
    stop: () =>
      (stopping ??= (async () => {
        if (!exited) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exit;
          clearTimeout(timer);
        }
        process.off('exit', killOnExit);
      })()),
  };
}

/** Start mosquitto with `options.conf` on a free loopback port; resolves once it accepts connections. */
export async function startMosquitto(options: MosquittoOptions): Promise<RunningMosquitto> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'mab-mosquitto-')));
  const cleanup = async (): Promise<void> => {
    if (ownDir) await rm(dir, { recursive: true, force: true });
  };
  try {
    // The port is free when chosen but another process may take it before mosquitto binds: try again then.
    for (let attempt = 0; attempt < 5; attempt++) {
      const running = await startOnce(options, dir, await freePort());
      if (running === 'port-taken') continue;
      const stop = running.stop;
      return {
        ...running,
        stop: async () => {
          await stop();
          await cleanup();
        },
      };
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  await cleanup();
  throw new Error('mosquitto could not bind a free port in 5 attempts');
}

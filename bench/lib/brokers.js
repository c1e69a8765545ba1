// Starting and stopping the brokers under test, each a fresh process per measurement, pinned to its core.
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from './client.js';
import { mosquittoOnlyDirectives, writeConf } from './setup.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** Node flags for the node servers (ours, the floor), e.g. BENCH_BROKER_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/p". */
const nodeFlags = (process.env.BENCH_BROKER_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p)) ?? 'mosquitto';

/** Every process we started and have not yet seen exit. */
export const children = new Set();

function has(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const tools = { taskset: has('taskset'), setpriv: has('setpriv') };

/** A wrapper that pins to `core` (when taskset exists) and dies with us (setpriv --pdeathsig). */
export function pinPrefix(core) {
  const prefix = [];
  if (tools.setpriv) prefix.push('setpriv', '--pdeathsig', 'KILL');
  if (core !== null && tools.taskset) prefix.push('taskset', '-c', String(core));
  return prefix;
}

export function mosquittoVersion() {
  try {
    return /mosquitto version (\S+)/.exec(execFileSync(MOSQUITTO, ['-h'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch (err) {
    return /mosquitto version (\S+)/.exec(String(err.stdout ?? ''))?.[1] ?? 'unknown';
  }
}

/** The brokers we know how to start. */
export const BROKERS = {
  ours: {
    label: 'ours (node dist/cli.js serve)',
    check() {
      const cli = join(root, 'dist', 'cli.js');
      if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first (npm run bench does)`);
    },
    command: (conf) => [process.execPath, ...nodeFlags, join(root, 'dist', 'cli.js'), 'serve', '-c', conf],
    env: (dataDir) => ({ DATA_DIR: dataDir, LOG_LEVEL: 'warn', OPS_PORT: '-1' }),
    extra: () => [],
  },
  'ours-mem': {
    label: 'ours with persistence false (node dist/cli.js serve)',
    check() {
      BROKERS.ours.check();
    },
    command: (conf) => BROKERS.ours.command(conf),
    env: (dataDir) => BROKERS.ours.env(dataDir),
    extra: () => [],
    persistence: false,
  },
  // Another build of this project (BENCH_BEFORE_DIR: a checkout with dist/ built, e.g. a git worktree of an
  // older commit), to measure a change before and after in the same run as mosquitto and the floor.
  before: {
    label: `before (${process.env.BENCH_BEFORE_DIR ?? 'BENCH_BEFORE_DIR unset'}/dist/cli.js serve)`,
    check() {
      const dir = process.env.BENCH_BEFORE_DIR;
      if (!dir) throw new Error('BENCH_BEFORE_DIR is not set: point it at a checkout of the earlier version with dist/ built');
      if (!existsSync(join(dir, 'dist', 'cli.js'))) throw new Error(`${dir}/dist/cli.js is missing: run npm ci && npm run build there`);
    },
    command: (conf) => [process.execPath, ...nodeFlags, join(process.env.BENCH_BEFORE_DIR ?? '', 'dist', 'cli.js'), 'serve', '-c', conf],
    env: (dataDir) => ({ DATA_DIR: dataDir, LOG_LEVEL: 'warn', OPS_PORT: '-1' }),
    extra: () => [],
  },
  mosquitto: {
    label: `mosquitto ${mosquittoVersion()} (Debian)`,
    check() {
      if (!existsSync(MOSQUITTO)) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
    },
    command: (conf) => [MOSQUITTO, '-c', conf],
    env: () => ({}),
    extra: mosquittoOnlyDirectives,
  },
  floor: {
    label: 'floor: a bare Node TLS server answering CONNECT and relaying PUBLISH (bench/node-tls-floor.js), not a broker',
    check() {},
    command: (conf) => [process.execPath, ...nodeFlags, join(root, 'bench', 'node-tls-floor.js'), conf],
    env: () => ({}),
    extra: () => [],
    // It speaks just enough MQTT to connect, stay connected and relay one publisher to one subscriber.
    scenarios: ['latency-qos0', 'latency-qos1', 'connect-seq', 'connect-c20', 'memory'],
  },
};

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function tail(file, lines = 15) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Starts broker `name` with a fresh config and data directory under `workDir`; resolves when an MQTT client
 * is accepted on both listeners. Returns { pid, tlsPort, tcpPort, confLines, logFile, stop() }.
 */
export async function startBroker(name, shared, workDir, { core, nofile, readyTimeoutMs = 20_000 }) {
  const def = BROKERS[name];
  def.check();
  const tlsPort = await freePort();
  // freePort releases the port it found, so a second call can return the same one.
  let tcpPort = await freePort();
  while (tcpPort === tlsPort) tcpPort = await freePort();
  const dataDir = join(workDir, 'data');
  const conf = join(workDir, 'mosquitto.conf');
  const confLines = writeConf(shared, { path: conf, tlsPort, tcpPort, dataDir, extra: def.extra(), persistence: def.persistence });
  const logFile = join(workDir, 'broker.log');
  const logFd = openSync(logFile, 'a');
  const script = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const argv = [...pinPrefix(core), ...def.command(conf)];
  const child = spawn('bash', ['-c', script, 'bench-broker', ...argv], {
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, ...def.env(dataDir) },
  });
  closeSync(logFd);
  children.add(child);
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      children.delete(child);
      resolve(exited);
    });
  });
  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(t);
    }
    return exited;
  };

  const deadline = Date.now() + readyTimeoutMs;
  let lastError;
  for (const transport of ['tls', 'tcp']) {
    const target = { transport, host: '127.0.0.1', port: transport === 'tls' ? tlsPort : tcpPort, ca: shared.ca, servername: 'localhost' };
    for (;;) {
      if (exited !== null) {
        throw new Error(`${name} exited (${exited.code ?? exited.signal}) during start:\n${tail(logFile)}`);
      }
      const c = new Client(target, { clientId: `bench-ready-${process.pid}`, username: shared.username, password: shared.password, keepalive: 0 });
      try {
        await c.connect();
        await c.disconnect();
        break;
      } catch (err) {
        c.socket?.destroy();
        lastError = err;
        if (/return code/.test(String(err.message))) {
          await stop();
          throw new Error(`${name} refused the bench user (${err.message}):\n${tail(logFile)}`, { cause: err });
        }
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`${name} not ready on ${transport} port after ${readyTimeoutMs} ms (${lastError?.message}):\n${tail(logFile)}`);
      }
      await sleep(50);
    }
  }
  return { name, pid: child.pid, tlsPort, tcpPort, confLines, logFile, stop, exited: () => exited, logTail: () => tail(logFile) };
}

/** Kills every process still running (SIGTERM, SIGKILL after `ms`). */
export async function killAll(ms = 2000) {
  const waits = [...children].map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
    setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, ms).unref();
  }));
  await Promise.all(waits);
}

/**
 * Offline checks of the Dockerfile and .dockerignore (no Docker engine here): dockerfile-utils' validator,
 * dockerfilelint (minus its one known misreading), the structure we rely on (multi-stage, production
 * dependencies only, non-root, health check, signals), the HEALTHCHECK command run for real against an HTTP
 * server, the build context, the native module's prebuilt binaries, and agreement with k8s/deployment.yaml.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validate } from 'dockerfile-utils';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import { REPO_DIR, only, renderKustomization } from '../support/k8s-manifests.js';
import { defaultConfig } from '../../src/config/schema.js';

const require = createRequire(import.meta.url);
const dockerfilelint = require('dockerfilelint') as {
  run(configPath: string, content: string): Array<{ title: string; rule: string; line: number }>;
};

const DOCKERFILE = readFileSync(join(REPO_DIR, 'Dockerfile'), 'utf8');
const DOCKERIGNORE = readFileSync(join(REPO_DIR, '.dockerignore'), 'utf8');

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Instructions with continuation lines joined and comments dropped (default escape character). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!.trim();
    if (first === '' || first.startsWith('#')) continue;
    const start = i + 1;
    let joined = lines[i]!;
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      if (next.trim().startsWith('#')) continue;
      joined = `${joined.replace(/\\\s*$/, '')} ${next.trim()}`;
    }
    const m = /^\s*(\S+)\s*(.*)$/.exec(joined)!;
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

const instructions = parseDockerfile(DOCKERFILE);

/** Stages in order, each with its instructions after FROM. */
function stages(): Array<{ from: string; name: string | undefined; body: Instruction[] }> {
  const result: Array<{ from: string; name: string | undefined; body: Instruction[] }> = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      result.push({ from: m[1]!, name: m[2], body: [] });
    } else result.at(-1)?.body.push(ins);
  }
  return result;
}

const runtime = stages().at(-1)!;
const get = (body: Instruction[], keyword: string): Instruction[] => body.filter((i) => i.keyword === keyword);
const one = (body: Instruction[], keyword: string): Instruction => {
  const found = get(body, keyword);
  if (found.length !== 1) throw new Error(`expected one ${keyword} in the runtime stage, found ${found.length}`);
  return found[0]!;
};

/** `KEY=value KEY2="v"` of ENV/LABEL. */
function keyValues(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    out[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  }
  return out;
}

const deployment = only<Deployment>(renderKustomization(), 'Deployment');
const container = deployment.spec!.template.spec!.containers[0]!;

describe('Dockerfile: linters', () => {
  it('has no problem according to dockerfile-utils', () => {
    expect(validate(DOCKERFILE).map((d) => `${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  it('dockerfile-utils does report problems in a broken Dockerfile (control)', () => {
    const messages = validate('FROM node:22\nEXPOSE mqtts\nHEALTHCHECK --interval=often CMD true\nSTOPSIGNAL\n').map(
      (d) => d.message,
    );
    expect(messages).toEqual(
      expect.arrayContaining([expect.stringMatching(/port/i), expect.stringMatching(/duration/)]),
    );
    expect(messages.length).toBeGreaterThanOrEqual(3);
  });

  it('has nothing for dockerfilelint but its known misreading of HEALTHCHECK --start-period', () => {
    const findings = dockerfilelint.run(REPO_DIR, DOCKERFILE);
    const healthcheckLine = instructions.find((i) => i.keyword === 'HEALTHCHECK')!.line;
    expect(findings.map((f) => [f.rule, f.line])).toEqual([['invalid_format', healthcheckLine]]);
    // The same file without that one option: no finding at all.
    expect(dockerfilelint.run(REPO_DIR, DOCKERFILE.replace(/--start-period=\S+ /, ''))).toEqual([]);
    // ...and dockerfilelint still finds faults where there are some (control).
    expect(dockerfilelint.run(REPO_DIR, 'FROM node\nRUN apt-get install curl\n').length).toBeGreaterThanOrEqual(2);
  });
});

describe('Dockerfile: structure', () => {
  it('builds on a maintained Node LTS (22 or 24), Debian bookworm slim, in every stage', () => {
    const arg = instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('NODE_MAJOR='));
    const major = arg?.args.split('=')[1];
    expect(['22', '24']).toContain(major);
    expect(stages().length).toBeGreaterThanOrEqual(2);
    for (const stage of stages()) {
      const image = stage.from.replace('${NODE_MAJOR}', major!);
      expect(image).toMatch(/^node:(22|24)-bookworm-slim$/);
    }
  });

  it('compiles in a build stage with all dependencies, from the lock file', () => {
    const build = stages().find((s) => s.name === 'build')!;
    const runs = get(build.body, 'RUN').map((r) => r.args);
    expect(runs.some((r) => /^npm ci\b/.test(r) && !r.includes('--omit'))).toBe(true);
    expect(runs).toContain('npm run build');
    expect(get(build.body, 'COPY').map((c) => c.args)).toContain('package.json package-lock.json ./');
  });

  it('runs no npm script while installing: package.json\'s prepare builds with tsc, before src/ is there or without tsc', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_DIR, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    // What makes --ignore-scripts necessary: `npm ci` runs the project's own prepare.
    expect(pkg.scripts.prepare).toBe('npm run build');
    const installs = instructions.filter((i) => i.keyword === 'RUN' && /\bnpm (ci|install|i)\b/.test(i.args));
    expect(installs).toHaveLength(2);
    for (const install of installs) expect(install.args, `line ${install.line}`).toMatch(/^npm ci [^&]*--ignore-scripts\b/);
    // In the build stage, the install comes before the sources it would need, and the build runs explicitly after.
    const build = stages().find((s) => s.name === 'build')!;
    const line = (pred: (i: Instruction) => boolean): number => build.body.find(pred)!.line;
    const install = line((i) => i.keyword === 'RUN' && i.args.startsWith('npm ci'));
    expect(install).toBeLessThan(line((i) => i.keyword === 'COPY' && i.args.startsWith('src ')));
    expect(line((i) => i.keyword === 'RUN' && i.args === 'npm run build')).toBeGreaterThan(install);
  });

  it('installs production dependencies only in the runtime stage, and takes just dist from the build', () => {
    const runs = get(runtime.body, 'RUN').map((r) => r.args);
    const installs = runs.filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatch(/^npm ci --omit=dev\b/);
    const copies = get(runtime.body, 'COPY').map((c) => c.args);
    expect(copies.filter((c) => c.startsWith('--from='))).toEqual(['--from=build /app/dist ./dist']);
    // package.json is there: the CLI reads its version from it, npm ci needs it.
    expect(copies).toContain('package.json package-lock.json ./');
    expect(one(runtime.body, 'WORKDIR').args).toBe('/app');
  });

  it('sets NODE_ENV=production and DATA_DIR=/mosquitto/data', () => {
    const envs = Object.assign({}, ...get(runtime.body, 'ENV').map((e) => keyValues(e.args))) as Record<string, string>;
    expect(envs).toMatchObject({ NODE_ENV: 'production', DATA_DIR: '/mosquitto/data' });
  });

  it('creates the mosquitto paths and the letsencrypt volume, owned by the user it runs as', () => {
    const dirs = ['/mosquitto/conf', '/mosquitto/data', '/etc/letsencrypt'];
    const run = get(runtime.body, 'RUN').find((r) => r.args.includes('mkdir'))!;
    expect(run.args).toContain(`mkdir -p ${dirs.join(' ')}`);
    expect(run.args).toContain(`chown node:node ${dirs.join(' ')}`);
    expect(JSON.parse(one(runtime.body, 'VOLUME').args)).toEqual(['/etc/letsencrypt', '/mosquitto/data']);
  });

  it('runs as the non-root user node once everything is installed', () => {
    const user = one(runtime.body, 'USER');
    expect(user.args).toBe('node');
    const lastRun = get(runtime.body, 'RUN').at(-1)!;
    expect(user.line).toBeGreaterThan(lastRun.line);
    expect(user.line).toBeLessThan(one(runtime.body, 'ENTRYPOINT').line);
  });

  it('exposes 8883 and the ops port 9883 (the broker default), stops on SIGTERM, and starts the CLI from package.json', () => {
    expect(one(runtime.body, 'EXPOSE').args.split(/\s+/).sort()).toEqual(['8883', '9883']);
    expect(defaultConfig().ops.port).toBe(9883);
    expect(one(runtime.body, 'STOPSIGNAL').args).toBe('SIGTERM');
    const pkg = JSON.parse(readFileSync(join(REPO_DIR, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const bin = pkg.bin['mqtt-acme-broker']!;
    expect(JSON.parse(one(runtime.body, 'ENTRYPOINT').args)).toEqual(['node', `/app/${bin}`]);
    expect(JSON.parse(one(runtime.body, 'CMD').args)).toEqual(['serve']);
    // The build writes dist/ from src/ (tsconfig.build.json), where the bin points.
    const build = JSON.parse(readFileSync(join(REPO_DIR, 'tsconfig.build.json'), 'utf8')) as {
      compilerOptions: { rootDir: string; outDir: string };
    };
    expect(build.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    expect(bin).toBe('dist/cli.js');
  });
});

describe('Dockerfile: HEALTHCHECK', () => {
  const healthcheck = one(runtime.body, 'HEALTHCHECK');
  const command = JSON.parse(healthcheck.args.slice(healthcheck.args.indexOf('CMD ') + 4)) as string[];

  async function serve(status: number): Promise<Server> {
    const server = createServer((req, res) => {
      res.writeHead(req.url === '/healthz' ? status : 404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  function runCheck(port: number): Promise<number> {
    expect(command[0]).toBe('node');
    return new Promise((resolve) => {
      execFile(process.execPath, command.slice(1), { env: { OPS_PORT: String(port) }, timeout: 10_000 }, (err) =>
        resolve(err ? ((err as { code?: number }).code ?? -1) : 0),
      );
    });
  }

  it('uses node itself (no curl in slim images), in exec form, with bounded timings', () => {
    expect(healthcheck.args).toMatch(/--interval=\d+s/);
    expect(healthcheck.args).toMatch(/--timeout=\d+s/);
    expect(command[0]).toBe('node');
    expect(command.join(' ')).toContain('/healthz');
  });

  it('asks OPS_PORT when it is set, else the broker\'s default ops port 9883', () => {
    const fallback = /process\.env\.OPS_PORT\s*\|\|\s*(\d+)/.exec(command.join(' '))?.[1];
    expect(Number(fallback)).toBe(defaultConfig().ops.port);
    expect(Number(fallback)).toBe(9883);
  });

  it('succeeds against a healthy /healthz and fails against 503 or nothing listening', async () => {
    const healthy = await serve(200);
    const sick = await serve(503);
    try {
      expect(await runCheck((healthy.address() as AddressInfo).port)).toBe(0);
      expect(await runCheck((sick.address() as AddressInfo).port)).toBe(1);
    } finally {
      healthy.close();
      sick.close();
    }
    const closed = await serve(200);
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect(await runCheck(port)).toBe(1);
  });
});

describe('.dockerignore', () => {
  /** Docker's rules: last matching pattern wins; a pattern matching a parent directory matches its files. */
  function included(path: string): boolean {
    const patterns = DOCKERIGNORE.split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const toRegex = (glob: string): RegExp =>
      new RegExp(
        `^${glob
          .replace(/^\/+|\/+$/g, '')
          .split('**')
          .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
          .join('.*')}$`,
      );
    const candidates = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const raw of patterns) {
      const negated = raw.startsWith('!');
      const re = toRegex(negated ? raw.slice(1) : raw);
      if (candidates.some((c) => re.test(c))) excluded = !negated;
    }
    return !excluded;
  }

  it('sends every file the Dockerfile copies', () => {
    const sources = instructions
      .filter((i) => (i.keyword === 'COPY' || i.keyword === 'ADD') && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect([...new Set(sources)].sort()).toEqual([
      'package-lock.json',
      'package.json',
      'src',
      'tsconfig.build.json',
      'tsconfig.json',
    ]);
    for (const source of sources) expect(included(source), source).toBe(true);
    expect(included('src/cli.ts')).toBe(true);
    expect(included('src/ops/http.ts')).toBe(true);
  });

  it('keeps out dependencies, build output, state, secrets and repository metadata', () => {
    const outside = [
      'node_modules/mqtt-packet/package.json',
      'dist/cli.js',
      'data/persistence/LOG',
      '.git/config',
      '.env',
      'test/unit/dockerfile.test.ts',
      'k8s/passwd',
      'bench/run.js',
      'coverage/index.html',
      'npm-debug.log',
    ];
    for (const path of outside) {
      expect(included(path), path).toBe(false);
    }
  });
});

describe('native module: classic-level prebuilt for the image', () => {
  it('is the only production dependency with an install script', () => {
    const lock = JSON.parse(readFileSync(join(REPO_DIR, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { hasInstallScript?: boolean; dev?: boolean }>;
    };
    const scripted = Object.entries(lock.packages)
      .filter(([, p]) => p.hasInstallScript === true && p.dev !== true)
      .map(([path]) => path);
    // A new one may need a compiler, which the slim image lacks: check its prebuilds, then extend this list.
    expect(scripted).toEqual(['node_modules/classic-level']);
  });

  it('ships glibc binaries for linux x64 and arm64 that bookworm (glibc 2.36) can load', () => {
    const dir = join(REPO_DIR, 'node_modules/classic-level/prebuilds');
    const cases: Array<[file: string, machine: number]> = [
      ['linux-x64/classic-level.node', 0x3e], // EM_X86_64
      ['linux-arm64/classic-level.armv8.node', 0xb7], // EM_AARCH64
    ];
    for (const [file, machine] of cases) {
      const elf = readFileSync(join(dir, file));
      expect(elf.subarray(0, 4).toString('latin1'), file).toBe('\x7fELF');
      expect(elf.readUInt16LE(18), file).toBe(machine);
      const text = elf.toString('latin1');
      expect(text, file).toContain('libc.so.6');
      expect(text, file).not.toContain('libc.musl');
      const needed = [...text.matchAll(/GLIBC_2\.(\d+)/g)].map((m) => Number(m[1]));
      expect(Math.max(...needed), file).toBeLessThanOrEqual(36);
    }
  });
});

describe('the image and k8s/deployment.yaml agree', () => {
  it('on the user (node = uid 1000 in the official Node images), DATA_DIR, ports, volumes and health path', () => {
    expect(one(runtime.body, 'USER').args).toBe('node');
    expect(deployment.spec!.template.spec!.securityContext?.runAsUser).toBe(1000);

    const envs = Object.assign({}, ...get(runtime.body, 'ENV').map((e) => keyValues(e.args))) as Record<string, string>;
    const dataDir = container.env?.find((e) => e.name === 'DATA_DIR')?.value ?? envs.DATA_DIR;
    expect(dataDir).toBe(envs.DATA_DIR);

    const exposed = one(runtime.body, 'EXPOSE').args.split(/\s+/).map(Number).sort();
    expect(container.ports?.map((p) => p.containerPort).sort()).toEqual(exposed);

    // Every VOLUME of the image is backed by a real volume in the pod (no anonymous volumes).
    const mounts = container.volumeMounts?.map((m) => m.mountPath) ?? [];
    for (const path of JSON.parse(one(runtime.body, 'VOLUME').args) as string[]) expect(mounts).toContain(path);

    expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(healthcheckPath()).toBe('/healthz');
  });
});

function healthcheckPath(): string | undefined {
  return /'(\/healthz)'/.exec(one(runtime.body, 'HEALTHCHECK').args)?.[1];
}

/**
 * The rules of ARCHITECTURE.md, checked: which room of src/ may import which. A new import that breaks one
 * fails here with the file and the import, so the map stays true.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const SRC = resolve(import.meta.dirname, '../../src');

/** What each room may import, besides itself, node:*, packages, log.ts and version.ts. */
const ALLOWED: Record<string, readonly string[]> = {
  x509: [],
  files: [],
  config: ['x509'],
  auth: ['files'],
  tls: ['config', 'x509'],
  certs: ['config', 'files', 'tls', 'x509'],
  broker: ['auth', 'config', 'tls'],
  ops: ['broker', 'tls'],
  server: ['auth', 'broker', 'certs', 'config', 'files', 'ops', 'tls', 'x509'],
  commands: ['auth', 'config', 'files', 'server', 'x509'],
  cli: ['commands'],
};
const ANYWHERE = new Set(['log', 'log-pretty', 'version']);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The room of a file under src/: its first folder, or its name for a file at the top. */
function room(file: string): string {
  const rel = relative(SRC, file).split(sep);
  return rel.length > 1 ? rel[0]! : rel[0]!.replace(/\.ts$/, '');
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.[^']+)'/g)].map((m) => m[1]!);
}

describe('the rooms of src/ and who may import whom', () => {
  const all = files(SRC);

  it('knows every room', () => {
    const rooms = new Set(all.map(room));
    for (const r of rooms) expect(ALLOWED[r] !== undefined || ANYWHERE.has(r), `room ${r} has no rule in ARCHITECTURE.md / this test`).toBe(true);
  });

  it('has no import across a wall', () => {
    const broken: string[] = [];
    for (const file of all) {
      const from = room(file);
      for (const spec of imports(file)) {
        const to = room(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        if (to === from || ANYWHERE.has(to)) continue;
        if (!(ALLOWED[from] ?? []).includes(to)) broken.push(`${relative(SRC, file)} imports ${spec} (${from} -> ${to})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('loads the schema library (zod) only where a configuration is loaded, never in the running broker', () => {
    // config/isolated.ts loads configurations in a short-lived child; the broker imports only these at run time.
    const zodFree = new Set(['managed.ts', 'config-error.ts', 'isolated.ts']);
    const loaders = new Set(['commands/check-config.ts']);
    const broken: string[] = [];
    for (const file of all) {
      const rel = relative(SRC, file);
      if (room(file) === 'config' || loaders.has(rel)) continue;
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+'([^']*\/config\/([a-z-]+)\.js)'/gm)) {
        if (m[1] === undefined && !zodFree.has(`${m[3]}.ts`)) broken.push(`${rel} imports ${m[2]} at run time`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('keeps tls free of certs, and only the composition root knows every room', () => {
    expect(ALLOWED.tls).not.toContain('certs');
    const knowsAll = Object.entries(ALLOWED).filter(([, to]) => to.length >= 7).map(([r]) => r);
    expect(knowsAll).toEqual(['server']);
  });
});

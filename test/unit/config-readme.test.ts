/**
 * The README's configuration tables against the one description of the configuration (src/config/schema.ts):
 * every key is in the table with its mosquitto.conf directive, its environment variable, its default and
 * whether a reload applies it; the section names no key, directive or variable that does not exist.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEYS, OBJECT_KEYS, directivesOf, keyAt, type KeyInfo } from '../../src/config/schema.js';
import { BRIDGE_DIRECTIVES, DIRECTIVES, DIRECTIVES_WITHOUT_KEY, KNOWN_UNSUPPORTED } from '../../src/config/mosquitto-conf.js';
import { ENV_VARIABLES, SECRET_VARIABLES } from '../../src/config/env.js';

const README = readFileSync(join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'README.md'), 'utf8');

/** The "## Configuration" section, up to the next "## ". */
function section(text: string): string {
  const start = text.indexOf('\n## Configuration\n');
  expect(start, 'README has a "## Configuration" section').toBeGreaterThanOrEqual(0);
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

/** The rows of the table whose header row starts with `first`, as cells (pipes escaped as \| stay in a cell). */
function table(text: string, header: string): string[][] {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith(header));
  expect(at, `a table headed "${header}"`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const line of lines.slice(at + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, line.endsWith('|') ? -1 : undefined).split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, '|')));
  }
  return rows;
}

/** The code spans of a cell. */
function codes(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
}

function defaultCell(key: KeyInfo): string {
  if (key.meta.defaultText !== undefined) return key.meta.defaultText;
  if (key.default === undefined) return '';
  return `\`${typeof key.default === 'string' ? key.default : JSON.stringify(key.default)}\``;
}

const text = section(README);
const settings = table(text, '| config.json | mosquitto.conf | environment | default | reload | meaning |');
const byKey = new Map(settings.map((row) => [codes(row[0] ?? '')[0] ?? row[0], row]));

describe('README: the Configuration tables', () => {
  it('has one row per key of the configuration, and no other', () => {
    expect(settings.map((row) => codes(row[0] ?? '')[0])).toEqual(KEYS.map((k) => k.path));
  });

  it.each(KEYS.map((k) => [k.path, k] as const))('%s: its directive, variable, default and reload are those of the schema', (path, key) => {
    const row = byKey.get(path);
    expect(row, `a row for ${path}`).toBeDefined();
    const [, conf = '', env = '', dflt = '', reload = '', meaning = ''] = row as string[];
    expect(new Set(codes(conf).map((c) => c.split(' ')[0])), `${path}: mosquitto.conf`).toEqual(new Set(directivesOf(key)));
    const variables = key.meta.env === undefined ? [] : [key.meta.env, ...(key.meta.envFile ? [`${key.meta.env}_FILE`] : [])];
    expect(codes(env), `${path}: environment`).toEqual(variables);
    expect(dflt, `${path}: default`).toBe(defaultCell(key));
    expect(reload, `${path}: reload`).toBe(key.meta.reload);
    expect(meaning.length, `${path}: meaning`).toBeGreaterThan(0);
  });

  it('lists the directives that set no key, and only those', () => {
    const rows = table(text, '| mosquitto.conf | meaning |');
    expect(rows.map((row) => codes(row[0] ?? '')[0]?.split(' ')[0])).toEqual([...DIRECTIVES_WITHOUT_KEY]);
  });

  it('names no environment variable, key or directive that does not exist', () => {
    const known = new Set([...ENV_VARIABLES, ...SECRET_VARIABLES.map((v) => `${v}_FILE`), 'NAME_FILE']);
    const names = new Set(KEYS.map((k) => k.path.split('.').pop()));
    for (const code of codes(text)) {
      const word = code.split(/[ =[]/)[0] as string;
      if (/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/.test(word)) expect(known, `README names the variable ${word}`).toContain(word);
      if (/^(acme|ops|listeners)[.[]/.test(code)) {
        const path = code.replace(/\.$/, '');
        expect(keyAt(path) !== undefined || OBJECT_KEYS.has(path), `README names the key ${code}`).toBe(true);
      }
      if (/^[a-z]+[A-Z][A-Za-z0-9]*$/.test(code)) expect(names, `README names the key ${code}`).toContain(code);
      if (/^[a-z0-9]+(_[a-z0-9.*]+)+$/.test(word) && !word.startsWith('bridge_')) {
        const directive = [...DIRECTIVES, ...KNOWN_UNSUPPORTED, ...BRIDGE_DIRECTIVES].includes(word);
        expect(directive, `README names the directive ${word}`).toBe(true);
      }
    }
  });
});

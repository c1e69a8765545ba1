/**
 * config.json as a config source: the keys of `Config` (see config.schema.json), every one optional. Unknown
 * keys and wrong types or values are errors naming the key path; an empty string means "not set"; relative
 * paths resolve against the file's directory; `$schema` is accepted and ignored.
 */
import { dirname, resolve } from 'node:path';
import { checkValues, configFileSchema } from './check.js';
import { keyAt, type ConfigLayer, type PartialConfig } from './schema.js';
import { ConfigError } from './config-error.js';

function syntaxError(text: string, file: string, err: Error): ConfigError {
  const pos = /position (\d+)/.exec(err.message);
  let where = '';
  if (pos) {
    const before = text.slice(0, Number(pos[1]));
    const line = before.split('\n').length;
    where = ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
  }
  const reason = err.message.replace(/ in JSON.*$/, '').replace(/, ".*$/, '');
  return new ConfigError(file, `not valid JSON${where} (${reason}); fix the syntax (JSON has no comments or trailing commas)`);
}

/** Visit every value set, depth first: `fn(path, value, holder, name)`. */
function visit(value: unknown, path: string, fn: (path: string, value: unknown, holder: Record<string, unknown>, name: string | number) => void): void {
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((item, i) => [i, item])
    : typeof value === 'object' && value !== null
      ? Object.entries(value)
      : [];
  for (const [name, item] of entries) {
    if (item === undefined) continue;
    const itemPath = typeof name === 'number' ? `${path}[${name}]` : path === '' ? name : `${path}.${name}`;
    fn(itemPath, item, value as Record<string, unknown>, name);
    visit(item, itemPath, fn);
  }
}

/** Parse config.json text into a layer; `file` names the source in messages and is the base of relative paths. */
export function parseConfigJson(text: string, file: string): ConfigLayer {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw syntaxError(text, file, err as Error);
  }
  const values = checkValues<PartialConfig & { $schema?: string }>(configFileSchema, data, (path) => (path === '' ? file : `${file}: ${path}`));
  delete values.$schema;
  const base = dirname(file);
  const sources: Record<string, string> = {};
  visit(values, '', (path, value, holder, name) => {
    sources[path] = `${file}: ${path}`;
    if (keyAt(path)?.kind === 'path' && typeof value === 'string') holder[name] = resolve(base, value);
  });
  return { values, sources };
}

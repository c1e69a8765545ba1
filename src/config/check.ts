/**
 * The validation of what one source sets, by the schema: types, ranges and formats in one pass, and the
 * first problem turned into a `ConfigError` whose source is where that value came from (`config.json:
 * acme.keyType`, `mosquitto.conf:12: max_keepalive`, `env MQTTS_PORT`).
 */
import * as z from 'zod';
import { OBJECT_KEYS, configSchema, keyAt, type PartialConfig } from './schema.js';
import { ConfigError } from './config-error.js';
import { closest } from './suggest.js';

/** `field` without its default, accepting undefined (the source does not set it). */
function layerField(field: z.ZodType): z.ZodType {
  if (field instanceof z.ZodDefault || field instanceof z.ZodPrefault || field instanceof z.ZodOptional) return layerField(field.unwrap() as z.ZodType);
  if (field instanceof z.ZodPipe) {
    // unsetIfEmpty: '' becomes undefined first, then the key's own type (optional here).
    if (field.in instanceof z.ZodTransform) return z.pipe(field.in, layerField(field.out as z.ZodType));
    // A normalization after the checks (dnsResolvers): keep it, without the default.
    const input = field.in instanceof z.ZodDefault ? (field.in.unwrap() as z.ZodType) : (field.in as z.ZodType);
    return z.pipe(input, field.out as z.ZodType).optional();
  }
  if (field instanceof z.ZodObject) return layerOf(field).optional();
  return field.optional();
}

function layerOf(object: z.ZodObject): z.ZodObject {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, field] of Object.entries(object.shape as Record<string, z.ZodType>)) shape[name] = layerField(field);
  return z.strictObject(shape);
}

/** What one source may set: every key optional and without its default (a listener is still whole, with its defaults). */
export const layerSchema = layerOf(configSchema);

/** config.json: a layer, and `$schema` (an editor's pointer to config.schema.json, otherwise ignored). */
export const configFileSchema = layerSchema.extend({ $schema: z.string().optional() });

/** ['listeners', 0, 'port'] -> 'listeners[0].port'. */
export function pathText(path: readonly PropertyKey[]): string {
  return path.reduce<string>((text, part) => (typeof part === 'number' ? `${text}[${part}]` : text === '' ? String(part) : `${text}.${String(part)}`), '');
}

/** The path one level up: 'listeners[0].port' -> 'listeners[0]' -> 'listeners' -> ''. */
export function parentPath(path: string): string {
  return path.replace(/(\[\d+\]|\.?[^.[\]]+)$/, '');
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  return `a ${typeof value}`;
}

const EXPECTED = {
  int: 'an integer',
  bool: 'true or false',
  string: 'a string',
  path: 'a file path (string)',
  enum: 'a string',
  list: 'an array of strings',
  listeners: 'an array',
} as const;

/** zod's names of JSON types, in words. */
const TYPE_WORDS: Record<string, string> = { string: 'a string', number: 'a number', int: 'an integer', boolean: 'true or false', object: 'an object', array: 'an array' };

/** What a JSON value at `path` should have been. */
function expected(path: string, zodType: string): string {
  const info = keyAt(path);
  if (info) return EXPECTED[info.kind];
  if (OBJECT_KEYS.has(path.replace(/\[\d+\]/g, '[]'))) return 'an object';
  if (keyAt(parentPath(path))?.kind === 'list') return 'a string';
  return TYPE_WORDS[zodType] ?? zodType;
}

/** The key path an issue is about, and the problem in words (never quoting a value that could be a secret). */
export function explain(issue: z.core.$ZodIssue): { path: string; problem: string } {
  const path = pathText(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const name = issue.keys[0] ?? '';
      const known = OBJECT_KEYS.get(path.replace(/\[\d+\]/g, '[]')) ?? [];
      const suggestion = closest(name, known);
      return {
        path: path === '' ? name : `${path}.${name}`,
        problem: `unknown key${suggestion ? `; did you mean "${suggestion}"?` : ''} (known keys${path === '' ? '' : ` of ${path}`}: ${known.join(', ')})`,
      };
    }
    case 'invalid_type':
      if (issue.input === undefined && issue.path.length > 0) {
        return { path: parentPath(path), problem: `"${String(issue.path[issue.path.length - 1])}" is required` };
      }
      return { path, problem: `expected ${expected(path, issue.expected)}, got ${typeName(issue.input)}` };
    case 'invalid_value': {
      const got = typeof issue.input === 'string' ? `"${issue.input}"` : typeName(issue.input);
      return { path, problem: `expected one of ${issue.values.join(', ')}, got ${got}` };
    }
    case 'too_big':
    case 'too_small':
      // The schema's own ranges say more; this is zod's safe-integer bound.
      return { path, problem: issue.message.startsWith('Too ') ? `${String(issue.input)} is out of range` : issue.message };
    default:
      return { path, problem: issue.message };
  }
}

/**
 * Check `values` against `schema`; returns them checked and normalized. Throws a `ConfigError` for the first
 * problem, its source given by `sourceOf(key path)`.
 */
export function checkValues<T>(schema: z.ZodType, values: unknown, sourceOf: (path: string) => string): T {
  const result = schema.safeParse(values, { reportInput: true });
  if (result.success) return result.data as T;
  const issue = result.error.issues[0] as z.core.$ZodIssue;
  const { path, problem } = explain(issue);
  throw new ConfigError(sourceOf(path), problem);
}

/** The source of a key path in a layer's map, or of the nearest enclosing path that has one. */
export function sourceIn(sources: Record<string, string>): (path: string) => string {
  return (path) => {
    for (let p = path; p !== ''; p = parentPath(p)) {
      const source = sources[p];
      if (source !== undefined) return source;
    }
    return path;
  };
}

/** Check the values of one source (mosquitto.conf, env, or a config.json already read). */
export function checkLayer(values: PartialConfig, sources: Record<string, string>): PartialConfig {
  return checkValues<PartialConfig>(layerSchema, values, sourceIn(sources));
}

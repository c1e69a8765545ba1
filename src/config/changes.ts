/**
 * What changed between two configurations, by the names a user knows (the mosquitto.conf directive where
 * there is one: `listener 8883`, `max_keepalive`; else the config.json key path: `acme.keyType`), split by the
 * table's `reload` mark into what a running broker applies on reload and what needs a restart. Values are
 * never named (some are secrets).
 */
import { isDeepStrictEqual } from 'node:util';
import { KEYS, directivesOf, type Config, type ListenerConfig } from './schema.js';

export interface ConfigChange {
  /** Changed settings the running broker can apply (SIGHUP). */
  live: string[];
  /** Changed settings that take effect only after a restart. */
  restart: string[];
}

/** The JSON form: a key set to undefined is the same as a key not there. */
function plain(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function valueAt(config: Config, path: string): unknown {
  let value: unknown = config;
  for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
  return value;
}

/** A listener's name: `listener PORT [ADDRESS]`, as in mosquitto.conf. */
function listenerName(l: ListenerConfig): string {
  return `listener ${l.port}${l.host === undefined ? '' : ` ${l.host}`}`;
}

function byName(listeners: readonly ListenerConfig[]): Map<string, unknown[]> {
  const map = new Map<string, unknown[]>();
  for (const l of listeners) {
    const name = listenerName(l);
    map.set(name, [...(map.get(name) ?? []), plain(l)]);
  }
  return map;
}

/** The settings that differ between `before` and `after`, each named once, in the order of the table. */
export function describeConfigChange(before: Config, after: Config): ConfigChange {
  const change: ConfigChange = { live: [], restart: [] };
  const was = byName(before.listeners);
  const now = byName(after.listeners);
  for (const name of new Set([...now.keys(), ...was.keys()])) {
    if (!isDeepStrictEqual(was.get(name), now.get(name))) change.restart.push(name);
  }
  for (const key of KEYS) {
    if (key.kind === 'listeners' || key.path.startsWith('listeners[]')) continue;
    if (isDeepStrictEqual(plain(valueAt(before, key.path)), plain(valueAt(after, key.path)))) continue;
    change[key.meta.reload].push(directivesOf(key)[0] ?? key.path);
  }
  return change;
}

/**
 * mqtt-packet calls `debug(...)` several times for every packet it parses or writes. With debugging off
 * each call still allocates its rest-argument array and walks the `enabled` getter: 4-5% of the broker's
 * CPU at QoS 1 in the fan-in profile. mqtt-packet's namespaces that are not enabled (the `DEBUG` variable,
 * read at start) get a function that does nothing instead. This module must be evaluated before
 * mqtt-packet is first loaded: modules that import aedes or mqtt-packet import it first.
 */
import { createRequire } from 'node:module';

const kQuiet = Symbol.for('mqtt-acme-broker.quiet-debug');

type Debug = ((...args: unknown[]) => void) & { enabled: boolean; namespace: string; extend(ns: string): Debug };
type CreateDebug = ((namespace: string) => Debug) & { enabled(namespace: string): boolean };

const require = createRequire(import.meta.url);
const id = require.resolve('debug');
const createDebug = require(id) as CreateDebug;
const cached = require.cache[id];

function silent(namespace: string): Debug {
  const debug = (() => undefined) as unknown as Debug;
  debug.enabled = false;
  debug.namespace = namespace;
  debug.extend = (ns: string) => silent(`${namespace}:${ns}`);
  return debug;
}

if (cached !== undefined && !(cached.exports as { [kQuiet]?: true })[kQuiet]) {
  cached.exports = new Proxy(createDebug, {
    apply(target, self, args: [string]) {
      const namespace = args[0];
      if (typeof namespace === 'string' && namespace.startsWith('mqtt-packet:') && !target.enabled(namespace)) {
        return silent(namespace);
      }
      return Reflect.apply(target, self, args) as Debug;
    },
    get(target, property, receiver) {
      return property === kQuiet ? true : (Reflect.get(target, property, receiver) as unknown);
    },
  });
}

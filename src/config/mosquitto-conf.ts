/**
 * The mosquitto.conf subset we read, with mosquitto 2.0's meaning (checked against mosquitto 2.0.11). The
 * directives are those the schema's table names (`conf`), each read by the kind of its key; the structure
 * (`listener`, `port`, `bind_address`, `log_type`, ...) is handled here.
 *
 * - `#` starts a comment only as the first character of a line; blank lines are skipped; leading blanks
 *   before a directive are tolerated. Arguments are separated by blanks; path values take the rest of the
 *   line (mosquitto allows spaces in them). Extra arguments after a value are ignored with a warning, as
 *   mosquitto ignores them.
 * - `listener PORT [ADDRESS]` starts a listener section (no address = all interfaces); the listener options
 *   (`certfile`, `keyfile`, `cafile`, `protocol`, `require_certificate`, `tls_version`, `ciphers`,
 *   `ciphers_tls1.3`) apply to the current section. Before the first `listener` line they configure
 *   mosquitto's default listener, as do `port N` and `bind_address ADDR` anywhere: that listener exists when
 *   any of them is set, on `port` or else 1883.
 * - `per_listener_settings false` only: `password_file`, `acl_file`, `allow_anonymous` are global
 *   wherever they appear. `max_connections` (per listener in mosquitto) limits the whole broker here.
 * - Booleans are exactly `true`/`false`; a value given twice for a path directive is an error (as mosquitto).
 * - Bridges are refused: a bridge directive is an error naming its line (a bridge that silently does not run
 *   loses messages). Other directives mosquitto knows that we do not implement, and unknown ones, are warned
 *   about and ignored (unknown ones with a suggestion when one is close).
 * Ranges and formats are checked by the schema with the other sources' (`check.ts`), naming `file:line: directive`.
 */
import { join, resolve } from 'node:path';
import type { ConfigLayer, KeyInfo, ListenerConfig, PartialConfig } from './schema.js';
import { KEYS, directivesOf } from './schema.js';
import { ConfigError } from './config-error.js';
import { closest } from './suggest.js';


/** Where mosquitto.conf's `persistence_location` directory holds our database (mosquitto's is mosquitto.db). */
export const PERSISTENCE_DB_NAME = 'mqtt-acme-broker.db';

/** Directives that shape the file rather than set a key of their own (or set one in their own way). */
const STRUCTURE = new Set(['listener', 'port', 'bind_address', 'log_type']);

/** Directives read here that set no key: the README lists them apart from the table of keys. */
export const DIRECTIVES_WITHOUT_KEY = ['per_listener_settings', 'log_dest'] as const;

/** Listener options: directive -> key (`listeners[].certfile`). */
const LISTENER_DIRECTIVES = new Map<string, KeyInfo>();
/** Global directives: directive -> key. */
const GLOBAL_DIRECTIVES = new Map<string, KeyInfo>();
for (const key of KEYS) {
  for (const directive of directivesOf(key)) {
    if (STRUCTURE.has(directive)) continue;
    (key.path.startsWith('listeners[].') ? LISTENER_DIRECTIVES : GLOBAL_DIRECTIVES).set(directive, key);
  }
}

/** Every directive we read. */
export const DIRECTIVES: readonly string[] = [...STRUCTURE, ...LISTENER_DIRECTIVES.keys(), ...GLOBAL_DIRECTIVES.keys(), ...DIRECTIVES_WITHOUT_KEY];

/** mosquitto 2.0 directives we accept but do not implement (warned about, then ignored). */
export const KNOWN_UNSUPPORTED: ReadonlySet<string> = new Set([
  'accept_protocol_versions', 'allow_duplicate_messages', 'allow_zero_length_clientid', 'auth_plugin',
  'auth_plugin_deny_special_chars', 'auto_id_prefix', 'autosave_interval', 'autosave_on_changes', 'bind_interface',
  'capath', 'check_retain_source', 'clientid_prefixes', 'connection_messages',
  'crlfile', 'dhparamfile', 'enable_control_api', 'global_plugin', 'http_dir', 'include_dir',
  'log_facility', 'log_timestamp', 'log_timestamp_format', 'max_inflight_bytes', 'max_qos',
  'max_queued_bytes', 'memory_limit', 'mount_point', 'persistence_file', 'persistent_client_expiration',
  'pid_file', 'plugin', 'psk_file', 'psk_hint', 'queue_qos0_messages', 'require_certificate_subject',
  'set_tcp_nodelay', 'socket_domain', 'tls_engine', 'tls_engine_kpass_sha1', 'tls_keyform',
  'upgrade_outgoing_qos', 'use_identity_as_username', 'use_subject_as_username',
  'use_username_as_clientid', 'user', 'websockets_headers_size', 'websockets_log_level',
]);
const KNOWN_UNSUPPORTED_PREFIXES = ['auth_opt_', 'plugin_opt_'];

/**
 * The bridge section of mosquitto.conf(5) (mosquitto 2.0), with the old aliases `clientid`, `username` and
 * `password` of the remote_* directives, which are bridge-only too; and anything starting with `bridge_`.
 */
export const BRIDGE_DIRECTIVES: ReadonlySet<string> = new Set([
  'connection', 'address', 'addresses', 'cleansession', 'clientid', 'idle_timeout', 'keepalive_interval',
  'local_cleansession', 'local_clientid', 'local_password', 'local_username', 'notification_topic', 'notifications',
  'notifications_local_only', 'password', 'remote_clientid', 'remote_password', 'remote_username', 'restart_timeout',
  'round_robin', 'start_type', 'threshold', 'topic', 'try_private', 'username',
]);

function isBridgeDirective(directive: string): boolean {
  return BRIDGE_DIRECTIVES.has(directive) || directive.startsWith('bridge_');
}

/** mosquitto `log_type` -> the pino level that shows it; `all` is debug (mosquitto has nothing finer). */
const LOG_TYPES: Record<string, 'error' | 'warn' | 'info' | 'debug' | null> = {
  error: 'error',
  warning: 'warn',
  notice: 'info',
  information: 'info',
  debug: 'debug',
  all: 'debug',
  subscribe: null,
  unsubscribe: null,
  websockets: null,
};
const LEVEL_ORDER = ['error', 'warn', 'info', 'debug'] as const;

export interface MosquittoConfResult {
  layer: ConfigLayer;
  warnings: string[];
}

interface Section {
  listener: ListenerConfig;
  /** Key-path suffix -> source, re-indexed when the section becomes listeners[i]. */
  sources: Record<string, string>;
  /** Line of the `listener` directive, for messages. */
  line?: number;
  /** Something was set in it (for the default listener: whether it exists at all). */
  used: boolean;
}

function newSection(line?: number): Section {
  return {
    listener: { port: 1883, protocol: 'mqtt', requireCertificate: false, selfSigned: false },
    sources: {},
    line,
    used: line !== undefined,
  };
}

/**
 * Parse mosquitto.conf text into a config layer. `file` names the source in messages; relative paths are
 * resolved against `cwd`, as mosquitto resolves them against its working directory.
 * Throws `ConfigError` naming `file:line: directive` for a wrong value or a bridge.
 */
export function parseMosquittoConf(text: string, opts: { file: string; cwd: string }): MosquittoConfResult {
  const { file, cwd } = opts;
  const values: PartialConfig = {};
  const sources: Record<string, string> = {};
  const warnings: string[] = [];
  const defaultSection = newSection();
  const sections: Section[] = [];
  let current = defaultSection;
  /** Directives taking a path value already seen, per section, for mosquitto's "Duplicate X value" error. */
  const seenPaths = new Map<Section | 'global', Set<string>>();
  let logTypes: Set<string> | undefined;
  let logTypeSource = '';
  const maxConnectionsInSection: string[] = [];
  let defaultPortSet = false;
  const defaultImplicitSources: string[] = [];

  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const lineNo = index + 1;
    const raw = lines[index] ?? '';
    if (raw.startsWith('#')) continue;
    const line = raw.replace(/^[ \t]+/, '').replace(/[ \t\r]+$/, '');
    if (line === '') continue;
    const at = `${file}:${lineNo}`;
    if (line.startsWith('#')) {
      throw new ConfigError(at, "a comment must start at the beginning of the line (mosquitto rejects an indented '#'); remove the blanks before it");
    }
    const match = /^(\S+)(?:[ \t]+(.*))?$/.exec(line);
    const directive = match?.[1] ?? '';
    const rest = match?.[2] ?? '';
    const args = rest === '' ? [] : rest.split(/[ \t]+/);
    const src = `${at}: ${directive}`;
    const fail = (problem: string): never => {
      throw new ConfigError(src, problem);
    };
    /** The single argument of a directive; warns about ignored extra arguments. */
    const one = (what: string): string => {
      const value = args[0];
      if (value === undefined) fail(`missing value; expected ${what}`);
      if (args.length > 1) warnings.push(`${src}: extra text "${args.slice(1).join(' ')}" ignored (as mosquitto does)`);
      return value as string;
    };
    const bool = (): boolean => {
      const value = one('true or false');
      if (value === 'true') return true;
      if (value === 'false') return false;
      return fail(`invalid value "${value}"; use true or false (lower case, as mosquitto requires)`);
    };
    const int = (what: string): number => {
      const value = one(what);
      if (!/^-?\d+$/.test(value)) fail(`invalid value "${value}"; expected ${what}`);
      const n = Number(value);
      if (!Number.isSafeInteger(n)) fail(`value ${value} is too large; expected ${what}`);
      return n;
    };
    const path = (scope: Section | 'global'): string => {
      if (rest === '') fail('missing value; expected a file path');
      let seen = seenPaths.get(scope);
      if (!seen) seenPaths.set(scope, (seen = new Set()));
      if (seen.has(directive)) fail(`${directive} is given twice${scope === 'global' ? '' : ' for this listener'} (mosquitto refuses this too); keep one`);
      seen.add(directive);
      return resolve(cwd, rest);
    };
    /** The value of a directive that sets `key`, read by the key's kind. */
    const value = (key: KeyInfo, scope: Section | 'global'): unknown => {
      switch (key.kind) {
        case 'bool':
          return bool();
        case 'int':
          return int(key.text);
        case 'path':
          return path(scope);
        case 'enum': {
          const v = one(key.text);
          if (!key.values?.includes(v)) fail(`invalid value "${v}"; use ${key.text}`);
          return v;
        }
        default:
          return one(key.text);
      }
    };

    if (isBridgeDirective(directive)) {
      const what = directive === 'connection' ? `the bridge${args[0] ? ` "${args[0]}"` : ''}` : 'this bridge option';
      fail(
        `bridges are not supported yet, so ${what} would not run and its messages would not be forwarded. Remove the bridge ` +
          '(its "connection" line and the bridge lines after it) and keep a mosquitto for the bridge, or bridge from that broker to this one',
      );
    }

    const listenerKey = LISTENER_DIRECTIVES.get(directive);
    if (listenerKey) {
      const section = current;
      if (section === defaultSection) defaultImplicitSources.push(src);
      section.used = true;
      const name = listenerKey.path.slice('listeners[].'.length);
      (section.listener as unknown as Record<string, unknown>)[name] = value(listenerKey, section);
      section.sources[name] = src;
      continue;
    }

    const globalKey = GLOBAL_DIRECTIVES.get(directive);
    if (globalKey) {
      let v = value(globalKey, 'global');
      if (directive === 'persistence_location') {
        // A directory, as in mosquitto (which keeps mosquitto.db in it): our database goes inside it.
        v = join(v as string, PERSISTENCE_DB_NAME);
      } else if (directive === 'max_connections') {
        // mosquitto: any value <= 0 means unlimited.
        if ((v as number) <= 0) v = -1;
        if (current !== defaultSection) maxConnectionsInSection.push(src);
      }
      (values as Record<string, unknown>)[globalKey.path] = v;
      sources[globalKey.path] = src;
      continue;
    }

    if (!STRUCTURE.has(directive) && !(DIRECTIVES_WITHOUT_KEY as readonly string[]).includes(directive)) {
      if (KNOWN_UNSUPPORTED.has(directive) || KNOWN_UNSUPPORTED_PREFIXES.some((p) => directive.startsWith(p))) {
        const extra = directive === 'include_dir' ? ' (the files in that directory are NOT read: put their settings in this file)' : '';
        warnings.push(`${src}: not supported by mqtt-acme-broker; ignored${extra}`);
        continue;
      }
      const suggestion = closest(directive, DIRECTIVES);
      // A warning, not an error (mosquitto would refuse to start): a typo must not take the broker down, and
      // every default it falls back to is the safe one (no anonymous access, no extra listener).
      warnings.push(`${src}: unknown directive, ignored${suggestion ? `; did you mean "${suggestion}"?` : ''}`);
      continue;
    }

    switch (directive) {
      case 'listener': {
        const portText = args[0];
        if (portText === undefined) fail('missing port; use "listener PORT [ADDRESS]"');
        if (!/^\d+$/.test(portText as string)) fail(`invalid port "${portText}"; use "listener PORT [ADDRESS]" with PORT 1..65535`);
        const port = Number(portText);
        if (port === 0) fail('port 0 means a unix socket listener in mosquitto, which is not supported; use a TCP port 1..65535');
        if (port > 65535) fail(`invalid port ${port}; use 1..65535`);
        const section = newSection(lineNo);
        section.listener.port = port;
        section.sources.port = src;
        const address = args[1];
        if (address !== undefined && address.startsWith('#')) {
          warnings.push(`${src}: "${args.slice(1).join(' ')}" ignored: a comment must start a line of its own`);
        } else if (address !== undefined) {
          section.listener.host = address;
          section.sources.host = src;
          if (args.length > 2) warnings.push(`${src}: extra text "${args.slice(2).join(' ')}" ignored (as mosquitto does)`);
        }
        sections.push(section);
        current = section;
        break;
      }
      case 'port': {
        const port = int('a port 1..65535');
        if (port < 1 || port > 65535) fail(`invalid port ${port}; use 1..65535`);
        defaultSection.listener.port = port;
        defaultSection.sources.port = src;
        defaultSection.used = true;
        defaultPortSet = true;
        break;
      }
      case 'bind_address':
        defaultSection.listener.host = one('an address');
        defaultSection.sources.host = src;
        defaultSection.used = true;
        defaultImplicitSources.push(src);
        break;
      case 'per_listener_settings':
        if (bool()) {
          fail('per_listener_settings true is not supported: password_file, acl_file and allow_anonymous apply to every listener here; remove the line or set it to false');
        }
        break;
      case 'log_type': {
        const v = one(Object.keys(LOG_TYPES).concat('none').join(', '));
        if (v === 'none') {
          logTypes = new Set();
        } else if (v in LOG_TYPES) {
          logTypes ??= new Set();
          logTypes.add(v);
          if (LOG_TYPES[v] === null) warnings.push(`${src}: "${v}" is not a separate log category here; ignored`);
        } else {
          fail(`invalid value "${v}"; use one of error, warning, notice, information, debug, all, none`);
        }
        logTypeSource = src;
        break;
      }
      case 'log_dest': {
        const v = args[0];
        if (v === undefined) fail('missing value; expected stdout, stderr, file PATH, syslog, topic, dlt or none');
        if (v === 'stdout' || v === 'stderr') break;
        if (v === 'file' && args.length < 2) fail('missing file path; use "log_dest file PATH"');
        if (['file', 'syslog', 'topic', 'dlt', 'none'].includes(v as string)) {
          warnings.push(`${src}: log_dest ${v} is not supported: logs go to stdout (as JSON lines)`);
          break;
        }
        fail(`invalid value "${v}"; use stdout or stderr (file, syslog, topic, dlt and none are accepted but logs go to stdout)`);
        break;
      }
    }
  }

  if (logTypes !== undefined) {
    const levels = [...logTypes].map((t) => LOG_TYPES[t]).filter((l): l is NonNullable<typeof l> => l != null);
    if (logTypes.size === 0) {
      values.logLevel = 'silent';
      sources.logLevel = logTypeSource;
    } else if (levels.length > 0) {
      values.logLevel = LEVEL_ORDER[Math.max(...levels.map((l) => LEVEL_ORDER.indexOf(l)))];
      sources.logLevel = logTypeSource;
    }
  }

  const all = defaultSection.used ? [...sections, defaultSection] : sections;
  if (defaultSection.used && !defaultPortSet) {
    warnings.push(
      `${defaultImplicitSources[0] ?? file}: applies to mosquitto's default listener, which therefore listens on port 1883 ` +
        '(no "port" line; this is what mosquitto does). Move the line below a "listener" line if it was meant for that listener, or add "port N"',
    );
  }
  if (maxConnectionsInSection.length > 0 && all.length > 1) {
    warnings.push(`${maxConnectionsInSection[0]}: limits the whole broker here (mosquitto applies it to one listener)`);
  }
  if (all.length > 0) {
    values.listeners = all.map((s) => s.listener);
    sources.listeners = `${file}`;
    all.forEach((s, i) => {
      for (const [k, v] of Object.entries(s.sources)) sources[`listeners[${i}].${k}`] = v;
      if (s.sources.port === undefined) sources[`listeners[${i}].port`] = `${file}: default listener (port 1883, as mosquitto)`;
    });
  }
  return { layer: { values, sources }, warnings };
}

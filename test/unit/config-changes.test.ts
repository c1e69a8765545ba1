import { describe, expect, it } from 'vitest';
import { describeConfigChange } from '../../src/config/changes.js';
import { KEYS, defaultConfig, directivesOf, type Config } from '../../src/config/schema.js';

function base(): Config {
  const config = defaultConfig();
  config.listeners = [
    { port: 8883, protocol: 'mqtt', certfile: '/c.pem', keyfile: '/k.pem', requireCertificate: false, selfSigned: false },
    { port: 1883, host: '127.0.0.1', protocol: 'mqtt', requireCertificate: false, selfSigned: false },
  ];
  config.passwordFile = '/mosquitto/conf/passwd';
  config.persistenceLocation = '/data/persistence';
  return config;
}

function change(edit: (c: Config) => void) {
  const before = base();
  const after = base();
  edit(after);
  return describeConfigChange(before, after);
}

describe('describeConfigChange', () => {
  it('finds nothing between equal configurations, also when one has keys set to undefined', () => {
    const after = base();
    after.aclFile = undefined;
    after.listeners[0] = { ...after.listeners[0]!, host: undefined };
    expect(describeConfigChange(base(), after)).toEqual({ live: [], restart: [] });
  });

  it('names what the broker applies live, and what needs a restart, by its mosquitto.conf directive or its config.json key', () => {
    const result = change((c) => {
      c.passwordFile = '/other/passwd';
      c.aclFile = '/acl';
      c.allowAnonymous = true;
      c.maxKeepalive = 60;
      c.maxInflightMessages = 5;
      c.maxQueuedMessages = 10;
      c.messageSizeLimit = 1000;
      c.maxPacketSize = 2000;
      c.maxTopicAlias = 0;
      c.retainAvailable = false;
      c.sysInterval = 0;
      c.logLevel = 'debug';
      c.maxConnections = 100;
      c.connectTimeout = 5;
    });
    // A running broker holds its own copy of these four (the listeners' limit, the decoder's packet limit,
    // the child loggers' level): they take effect at the next start.
    expect(result.restart).toEqual(['max_connections', 'message_size_limit', 'max_packet_size', 'log_type']);
    expect(result.live).toEqual([
      'password_file', 'acl_file', 'allow_anonymous', 'max_keepalive',
      'max_inflight_messages', 'max_queued_messages', 'retain_available', 'max_topic_alias',
      'connectTimeout', 'sys_interval',
    ]);
  });

  it('names a changed, added or removed listener as "listener PORT [ADDRESS]", which needs a restart', () => {
    expect(change((c) => (c.listeners[0]!.tlsVersion = 'tlsv1.3'))).toEqual({ live: [], restart: ['listener 8883'] });
    expect(change((c) => (c.listeners[0]!.ciphers = 'HIGH'))).toEqual({ live: [], restart: ['listener 8883'] });
    expect(change((c) => (c.listeners[1]!.protocol = 'websockets'))).toEqual({ live: [], restart: ['listener 1883 127.0.0.1'] });
    expect(change((c) => c.listeners.push({ port: 9001, protocol: 'websockets', requireCertificate: false, selfSigned: true }))).toEqual({
      live: [],
      restart: ['listener 9001'],
    });
    expect(change((c) => c.listeners.shift())).toEqual({ live: [], restart: ['listener 8883'] });
    // Moving a listener to another port is two: the one that goes and the one that comes.
    expect(change((c) => (c.listeners[0]!.port = 8884)).restart.sort()).toEqual(['listener 8883', 'listener 8884']);
    // Order alone is no change.
    expect(change((c) => c.listeners.reverse())).toEqual({ live: [], restart: [] });
  });

  it('needs a restart for persistence, the data directory, ACME and the ops server, and never names a value', () => {
    const result = change((c) => {
      c.persistence = false;
      c.persistenceLocation = '/elsewhere';
      c.dataDir = '/var/lib/mab';
      c.acme.keyType = 'rsa-2048';
      c.acme.domains = ['example.com'];
      c.acme.cloudflare.apiToken = 'tok-Secret-77';
      c.ops.port = 9999;
      c.ops.host = '127.0.0.1';
    });
    expect(result.live).toEqual([]);
    expect(result.restart).toEqual([
      'dataDir', 'persistence', 'persistence_location', 'acme.domains', 'acme.cloudflare.apiToken', 'acme.keyType', 'ops.port', 'ops.host',
    ]);
    expect(JSON.stringify(result)).not.toContain('Secret');
  });

  it('every key of the table is marked live or restart, and a change of each one is reported under its name', () => {
    for (const key of KEYS) {
      expect(['live', 'restart'], key.path).toContain(key.meta.reload);
      if (key.kind === 'listeners' || key.path.startsWith('listeners[]')) continue;
      const result = change((c) => {
        const parts = key.path.split('.');
        const name = parts.pop() as string;
        let holder = c as unknown as Record<string, unknown>;
        for (const part of parts) holder = holder[part] as Record<string, unknown>;
        holder[name] = { changed: true };
      });
      expect(result[key.meta.reload], key.path).toEqual([directivesOf(key)[0] ?? key.path]);
    }
  });

  it('marks exactly the settings the broker can apply while running as live', () => {
    const live = KEYS.filter((k) => k.meta.reload === 'live').map((k) => k.path);
    expect(live).toEqual([
      'passwordFile', 'aclFile', 'allowAnonymous', 'maxKeepalive', 'maxInflightMessages',
      'maxQueuedMessages', 'retainAvailable', 'maxTopicAlias', 'connectTimeout', 'sysInterval',
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { AclError, filterCovers, parseAcl, topicMatches, type ClientAcl } from '../../src/auth/acl.js';

function client(text: string, username: string | undefined, clientId = 'client-1'): ClientAcl {
  return parseAcl(text, 'acl').forClient(username, clientId);
}

describe('topic matching', () => {
  const cases: [string, string, boolean][] = [
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/b', 'a/bc', false],
    ['a/b', 'a', false],
    ['a', 'a/b', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/', true],
    ['a/+', 'a', false],
    ['a/+', 'a/b/c', false],
    ['+/+', '/', true],
    ['+', '/', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'ab', false],
    ['#', 'a/b', true],
    ['+/b/#', 'x/b', true],
    ['#', '$SYS/broker', false],
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['spaced topic/x', 'spaced topic/x', true],
  ];
  it.each(cases)('filter %s vs topic %s -> %s', (filter, topic, expected) => {
    expect(topicMatches(filter.split('/'), topic)).toBe(expected);
  });

  const covers: [string, string, boolean][] = [
    ['a/#', 'a/+/b', true],
    ['a/#', 'a/#', true],
    ['a/#', 'a', true],
    ['a/+', 'a/#', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/b', 'a/+', false],
    ['a/+/#', 'a/+', true],
    ['a/+/#', 'a/#', false],
    ['#', '#', true],
    ['+/#', '#', false],
    ['#', '$SYS/#', false],
    ['$SYS/#', '$SYS/broker/+', true],
    ['a/b', 'a/b/c', false],
  ];
  it.each(covers)('ACL %s covers filter %s -> %s', (acl, sub, expected) => {
    expect(filterCovers(acl.split('/'), sub.split('/'))).toBe(expected);
  });
});

describe('parseAcl', () => {
  it('reads topic, user and pattern lines with optional access; the topic is the rest of the line', () => {
    const acl = parseAcl(
      [
        '# comment',
        '',
        'topic read anon/#',
        'user alice',
        '  # indented comment',
        'topic a/#',
        'topic write  spaced topic/x  ',
        'topic read',
        'pattern deny secret/%u',
        'user  bob smith ',
        'topic\treadwrite b/#',
      ].join('\n'),
      'acl.conf',
    );
    expect(acl.rules).toEqual([
      { kind: 'topic', access: 'read', topic: 'anon/#', user: undefined, line: 3 },
      { kind: 'topic', access: 'readwrite', topic: 'a/#', user: 'alice', line: 6 },
      { kind: 'topic', access: 'write', topic: 'spaced topic/x', user: 'alice', line: 7 },
      // As mosquitto: a single word is the topic, with readwrite access.
      { kind: 'topic', access: 'readwrite', topic: 'read', user: 'alice', line: 8 },
      { kind: 'pattern', access: 'deny', topic: 'secret/%u', user: undefined, line: 9 },
      { kind: 'topic', access: 'readwrite', topic: 'b/#', user: 'bob smith', line: 11 },
    ]);
    expect(acl.users()).toEqual(['alice', 'bob smith']);
    expect(acl.warnings).toEqual([]);
  });

  it('refuses bad lines with an AclError naming file and line', () => {
    const bad: [string, RegExp][] = [
      ['topic read a\nfoo bar', /^acl\.conf:2: unknown directive "foo"/],
      ['TOPIC read a', /^acl\.conf:1: unknown directive "TOPIC"/],
      ['topic bogus a', /^acl\.conf:1: invalid access "bogus"/],
      ['\n\ntopic read a/#/b', /^acl\.conf:3: invalid ACL topic "a\/#\/b"/],
      ['topic read a+/b', /^acl\.conf:1: invalid ACL topic/],
      ['user', /^acl\.conf:1: missing user name/],
      ['user    ', /^acl\.conf:1: missing user name/],
      ['topic', /^acl\.conf:1: empty topic/],
    ];
    for (const [text, message] of bad) {
      let caught: unknown;
      try {
        parseAcl(text, 'acl.conf');
      } catch (err) {
        caught = err;
      }
      expect(caught, text).toBeInstanceOf(AclError);
      expect((caught as AclError).message, text).toMatch(message);
      expect((caught as AclError).source).toBe('acl.conf');
    }
  });

  it('warns about a pattern without %c or %u (as mosquitto does)', () => {
    expect(parseAcl('pattern read a/b', 'f').warnings).toEqual(['f:1: pattern "a/b" contains neither %c nor %u']);
  });
});

describe('ClientAcl', () => {
  it('read, write and readwrite grant what they say; nothing else is allowed', () => {
    const c = client('user u\ntopic read r/#\ntopic write w/#\ntopic readwrite rw/#', 'u');
    expect([c.canReceive('r/1'), c.canPublish('r/1')]).toEqual([true, false]);
    expect([c.canReceive('w/1'), c.canPublish('w/1')]).toEqual([false, true]);
    expect([c.canReceive('rw/1'), c.canPublish('rw/1')]).toEqual([true, true]);
    expect([c.canReceive('other'), c.canPublish('other')]).toEqual([false, false]);
  });

  it('topic lines before the first user line apply to anonymous clients only; user sections to that user', () => {
    const text = 'topic read public/#\nuser alice\ntopic read alice/#\nuser bob\ntopic read bob/#\nuser alice\ntopic read more/#';
    const anon = client(text, undefined);
    const alice = client(text, 'alice');
    const bob = client(text, 'bob');
    const carol = client(text, 'carol');
    expect(anon.canReceive('public/x')).toBe(true);
    expect(anon.canReceive('alice/x')).toBe(false);
    expect(alice.canReceive('public/x')).toBe(false);
    expect(alice.canReceive('alice/x')).toBe(true);
    expect(alice.canReceive('more/x')).toBe(true); // a second section of the same user adds to it
    expect(alice.canReceive('bob/x')).toBe(false);
    expect(bob.canReceive('bob/x')).toBe(true);
    expect(carol.canReceive('public/x')).toBe(false);
    expect(carol.canReceive('alice/x')).toBe(false);
  });

  it('deny wins over grants whatever the order, also a pattern deny over a topic grant', () => {
    const text = 'user u\ntopic deny a/secret/#\ntopic readwrite a/#\ntopic read b/#\npattern deny b/%c/#';
    const c = client(text, 'u', 'cam');
    expect(c.canReceive('a/open')).toBe(true);
    expect(c.canReceive('a/secret')).toBe(false);
    expect(c.canPublish('a/secret/x')).toBe(false);
    expect(c.canReceive('b/other/x')).toBe(true);
    expect(c.canReceive('b/cam/x')).toBe(false);
    const after = client('user u\ntopic readwrite a/#\ntopic deny a/secret/#', 'u');
    expect(after.canReceive('a/secret/x')).toBe(false);
  });

  it('patterns substitute %c and %u (also inside a level, as mosquitto 2.0.11) and apply to every client', () => {
    const text = 'topic read x\nuser alice\ntopic read y\npattern readwrite devices/%c/#\npattern read users/%u/#\npattern write dev-%c';
    const alice = client(text, 'alice', 'cam1');
    expect(alice.canPublish('devices/cam1/status')).toBe(true);
    expect(alice.canPublish('devices/cam2/status')).toBe(false);
    expect(alice.canReceive('users/alice/inbox')).toBe(true);
    expect(alice.canReceive('users/bob/inbox')).toBe(false);
    expect(alice.canPublish('dev-cam1')).toBe(true);
    expect(alice.canPublish('dev-cam2')).toBe(false);
    const anon = client(text, undefined, 'cam2');
    expect(anon.canPublish('devices/cam2/x')).toBe(true); // patterns apply to anonymous clients too
    expect(anon.canReceive('users//inbox')).toBe(false); // ... but not %u ones
    expect(anon.canReceive('users/%u/inbox')).toBe(false);
  });

  it('a pattern never applies to a client whose id or user name contains +, # or / (or is empty)', () => {
    const text = 'pattern readwrite devices/%c/#\npattern readwrite users/%u/#';
    for (const id of ['#', '+', 'a/b', '']) {
      const c = client(text, 'alice', id);
      expect(c.canReceive('devices/x/y'), id).toBe(false);
      expect(c.canReceive('devices/a/b/c'), id).toBe(false);
      expect(c.canSubscribe('devices/#'), id).toBe(false);
      expect(c.canReceive('users/alice/x'), id).toBe(true); // the %u pattern still applies
    }
    for (const user of ['#', 'x+', 'a/b']) {
      const c = client(text, user, 'cam');
      expect(c.canReceive('users/anything/x'), user).toBe(false);
      expect(c.canReceive('users/a/b/x'), user).toBe(false);
      expect(c.canReceive('devices/cam/x'), user).toBe(true);
    }
  });

  it('wildcards in ACL topics: + is one level, # the rest including the parent', () => {
    const c = client('user u\ntopic read a/+/c\ntopic read b/#', 'u');
    expect(c.canReceive('a/x/c')).toBe(true);
    expect(c.canReceive('a/x/y/c')).toBe(false);
    expect(c.canReceive('b')).toBe(true);
    expect(c.canReceive('b/1/2/3')).toBe(true);
    expect(c.canReceive('bb')).toBe(false);
  });

  it('topics starting with $ are not matched by a leading # or + (MQTT 4.7.2), only by an explicit $ rule', () => {
    const all = client('user u\ntopic readwrite #\ntopic read +/broker/#', 'u');
    expect(all.canReceive('$SYS/broker/uptime')).toBe(false);
    expect(all.canPublish('$SYS/x')).toBe(false);
    expect(all.canSubscribe('$SYS/#')).toBe(false);
    expect(all.canReceive('x/broker/uptime')).toBe(true);
    const sys = client('user u\ntopic read $SYS/#', 'u');
    expect(sys.canReceive('$SYS/broker/uptime')).toBe(true);
    expect(sys.canSubscribe('$SYS/broker/+')).toBe(true);
  });

  it('subscribe: allowed when a readable rule overlaps the filter (as mosquitto); a covering deny refuses, an overlapping one does not', () => {
    const c = client('user u\ntopic read a/#\ntopic read b/+\ntopic write w/#\ntopic deny a/secret/#', 'u');
    expect(c.canSubscribe('a/+/b')).toBe(true);
    expect(c.canSubscribe('a/#')).toBe(true); // overlaps the deny: granted, and canReceive filters each message
    expect(c.canReceive('a/secret/x')).toBe(false);
    expect(c.canSubscribe('a/secret/#')).toBe(false);
    expect(c.canSubscribe('a/secret/x')).toBe(false);
    expect(c.canSubscribe('b/+')).toBe(true);
    expect(c.canSubscribe('b/#')).toBe(true); // overlaps b/+: delivery filters the deeper topics
    expect(c.canReceive('b/x/y')).toBe(false);
    expect(c.canSubscribe('#')).toBe(true);
    expect(c.canSubscribe('c/#')).toBe(false); // nothing readable under c/
    expect(c.canSubscribe('a/secret')).toBe(false); // the deny covers it
    expect(c.canSubscribe('w/#')).toBe(false); // write-only
    expect(c.canSubscribe('a/#/x')).toBe(false); // invalid filter
    const everything = client('user u\ntopic read #', 'u');
    expect(everything.canSubscribe('#')).toBe(true);
    expect(everything.canSubscribe('+/+')).toBe(true);
    const split = client('user u\ntopic read sensors/+/temp\ntopic read sensors/+/hum', 'u');
    expect(split.canSubscribe('sensors/#')).toBe(true);
    expect(split.canSubscribe('sensors/kitchen/+')).toBe(true);
    expect(split.canSubscribe('sensors/kitchen/light')).toBe(false);
    expect(split.canSubscribe('$SYS/#')).toBe(false);
  });

  it('an empty ACL file denies everything', () => {
    const c = client('', 'u');
    expect([c.canPublish('a'), c.canReceive('a'), c.canSubscribe('a')]).toEqual([false, false, false]);
  });
});

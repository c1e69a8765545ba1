/**
 * Topic names and filters (MQTT 5 and 3.1.1 section 4.7): the validation tables, `$share` parsing, and
 * matching, with compileFilter checked against topicMatchesFilter on every pair of a small universe.
 */
import { describe, expect, it } from 'vitest';
import { compileFilter, parseSharedFilter, topicFilterProblem, topicMatchesFilter, topicNameProblem } from '../../src/broker/topics.js';

describe('topicNameProblem', () => {
  it.each(['a', 'a/b/c', '/', '/a', 'a/', 'a//b', '$SYS/broker/uptime', 'caméra/ä', 'スマート/家', 'x'.repeat(65_535), 'é'.repeat(32_767)])(
    'accepts %j', (topic) => expect(topicNameProblem(topic)).toBeUndefined(),
  );

  it.each([
    ['', /empty/],
    ['a/+', /wildcard/],
    ['+', /wildcard/],
    ['a/#', /wildcard/],
    ['a#b', /wildcard/],
    ['a+b/c', /wildcard/],
    ['a/\u0000/b', /U\+0000/],
    ['x'.repeat(65_536), /65535/],
    ['é'.repeat(32_768), /65535/], // 65,536 UTF-8 bytes in 32,768 code units
  ])('rejects %j', (topic, reason) => expect(topicNameProblem(topic)).toMatch(reason));
});

describe('topicFilterProblem', () => {
  it.each([
    'a', 'a/b', '#', '+', '+/+', 'a/#', 'a/+/c', '+/#', '/', '/#', '//', 'a//b', '+//+', '$SYS/#', '$share',
    '$shared/g/a', 'a/$share/g', '$share/g/#', '$share/g/a/+/c', '$share/group-1/+', '$share/g/$share/h/x', '$share/g//',
    'x'.repeat(65_535),
  ])('accepts %j', (filter) => expect(topicFilterProblem(filter)).toBeUndefined());

  it.each([
    ['', /empty/],
    ['a/\u0000', /U\+0000/],
    ['x'.repeat(65_536), /65535/],
    ['#/a', /#/],
    ['a/#/b', /#/],
    ['a#', /#/],
    ['a/b#', /#/],
    ['##', /#/],
    ['a+', /\+/],
    ['a/+b/c', /\+/],
    ['++', /\+/],
    ['$share/', /empty share name/],
    ['$share//a', /empty share name/],
    ['$share/g', /no topic filter/],
    ['$share/g/', /empty/],
    ['$share/g+/a', /wildcard/],
    ['$share/+/a', /wildcard/],
    ['$share/#/a', /wildcard/],
    ['$share/g#h/a', /wildcard/],
    ['$share/g/a/#/b', /#/],
    ['$share/g/a+', /\+/],
  ])('rejects %j', (filter, reason) => expect(topicFilterProblem(filter)).toMatch(reason));
});

describe('parseSharedFilter', () => {
  it.each([
    ['$share/g/a/b', { group: 'g', filter: 'a/b' }],
    ['$share/g/#', { group: 'g', filter: '#' }],
    ['$share/g//a', { group: 'g', filter: '/a' }],
    ['$share/g/$share/h/x', { group: 'g', filter: '$share/h/x' }],
  ])('splits %j into share name and filter', (filter, parts) => expect(parseSharedFilter(filter)).toEqual(parts));

  it.each(['a/b', '#', '$share', '$share/g', '$shared/g/a', 'x/$share/g/a'])('%j is not shared', (filter) => {
    expect(parseSharedFilter(filter)).toBeUndefined();
  });
});

const MATCHES: [string, string, boolean][] = [
  ['a/b', 'a/b', true],
  ['a/b', 'a/c', false],
  ['a/b', 'a/b/c', false],
  ['a/b', 'a', false],
  ['a/+', 'a/b', true],
  ['a/+', 'a/', true], // an empty level is a level
  ['a/+', 'a', false],
  ['a/+', 'a/b/c', false],
  ['+/b', '/b', true],
  ['+', 'a', true],
  ['+', '/a', false],
  ['+/+', '/a', true],
  ['/+', '/a', true],
  ['a//b', 'a//b', true],
  ['a/+/b', 'a//b', true],
  ['a/b', 'a//b', false],
  ['#', 'a/b/c', true],
  ['#', '/', true],
  ['a/#', 'a', true], // the parent level
  ['a/#', 'a/', true],
  ['a/#', 'a/b/c', true],
  ['a/#', 'ab', false],
  ['a/#', 'b/a', false],
  ['a/b/#', 'a/b', true],
  ['a/b/#', 'a', false],
  ['+/#', 'a', true],
  ['a/+/#', 'a/b', true],
  ['a/+/#', 'a', false],
  ['/#', '/a', true],
  ['/#', 'a', false],
  ['#', '$SYS/uptime', false], // MQTT-4.7.2-1
  ['+/uptime', '$SYS/uptime', false],
  ['+/#', '$SYS', false],
  ['+', '$SYS', false],
  ['$SYS/#', '$SYS/uptime', true],
  ['$SYS/#', '$SYS', true],
  ['$SYS/+', '$SYS/uptime', true],
  ['a/+', 'a/$x', true], // only the first level is guarded
  ['a/#', 'a/$x/y', true],
  ['a.b/+', 'aXb/c', false], // no regular expression leaks through
  ['a*/+', 'a*/c', true],
  ['(x)/[y]/+', '(x)/[y]/z', true],
  ['a/+', 'a/b\nc', true],
  ['a/#', 'a/b\nc/d', true],
  ['a/+/#', 'a/b/c\nd', true],
  ['é/+/家', 'é/x/家', true],
];

describe('topicMatchesFilter and compileFilter', () => {
  it.each(MATCHES)('%j against %j -> %s', (filter, topic, expected) => {
    expect(topicMatchesFilter(filter, topic)).toBe(expected);
    expect(compileFilter(filter)(topic)).toBe(expected);
  });

  it('agree on every pair of a universe of filters and topics', () => {
    const levels = ['a', 'b', '', '$x'];
    const topics: string[] = [];
    const grow = (prefix: string[], depth: number): void => {
      if (prefix.length > 0 && prefix.join('/') !== '') topics.push(prefix.join('/'));
      if (depth === 0) return;
      for (const level of levels) grow([...prefix, level], depth - 1);
    };
    grow([], 3);
    const filters = new Set<string>();
    for (const topic of topics) {
      const parts = topic.split('/');
      filters.add(topic);
      // Every way of turning levels into `+`, with and without a trailing `#`.
      for (let mask = 0; mask < 1 << parts.length; mask++) {
        const filter = parts.map((level, i) => (mask & (1 << i) ? '+' : level));
        filters.add(filter.join('/'));
        filters.add([...filter, '#'].join('/'));
      }
    }
    filters.add('#');
    let matched = 0;
    for (const filter of filters) {
      expect(topicFilterProblem(filter)).toBeUndefined();
      const compiled = compileFilter(filter);
      for (const topic of topics) {
        const expected = topicMatchesFilter(filter, topic);
        if (compiled(topic) !== expected) throw new Error(`${filter} vs ${topic}: compiled says ${!expected}`);
        if (expected) matched++;
      }
    }
    expect(matched).toBeGreaterThan(1000); // the universe is not trivially empty
  });
});

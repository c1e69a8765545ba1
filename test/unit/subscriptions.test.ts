/**
 * The subscription index: who receives a message published to a topic. Wildcards and the `$` rule, one Match
 * per client with its subscriptions aggregated, no-local, shared subscriptions round-robin, and the per-topic
 * cache never answering with what the index held before a change.
 */
import { describe, expect, it } from 'vitest';
import type { QoS } from '../../src/broker/message.js';
import type { StoredSubscription } from '../../src/broker/store/store.js';
import { type Match, SubscriptionIndex } from '../../src/broker/subscriptions.js';
import { topicFilterProblem, topicMatchesFilter } from '../../src/broker/topics.js';

const sub = (filter: string, options: Partial<StoredSubscription> = {}): StoredSubscription => ({
  filter, qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, ...options,
});
const everyone = (): boolean => true;
const nobody = (): boolean => false;

/** The client ids that get `topic`, sorted. */
const receivers = (index: SubscriptionIndex, topic: string, publisher?: string): string[] =>
  index.match(topic, publisher, everyone).map((m) => m.clientId).sort();

const only = (matches: Match[]): Match => {
  expect(matches).toHaveLength(1);
  return matches[0] as Match;
};

describe('SubscriptionIndex matching', () => {
  const index = new SubscriptionIndex();
  const filters: Record<string, string> = {
    exact: 'home/kitchen/light', plusMiddle: 'home/+/light', hashAll: '#', homeHash: 'home/#', plusFirst: '+/kitchen/+',
    sys: '$SYS/#', emptyLevel: 'a//b', leadingSlash: '/a', plusEmpty: 'a/+/b', deep: 'home/kitchen/light/#',
  };
  for (const [client, filter] of Object.entries(filters)) index.add(client, sub(filter));

  it.each([
    ['home/kitchen/light', ['deep', 'exact', 'hashAll', 'homeHash', 'plusFirst', 'plusMiddle']],
    ['home/hall/light', ['hashAll', 'homeHash', 'plusMiddle']],
    ['home', ['hashAll', 'homeHash']], // `home/#` matches its parent level
    ['home/kitchen', ['hashAll', 'homeHash']],
    ['garden/kitchen/x', ['hashAll', 'plusFirst']],
    ['home/kitchen/light/on', ['deep', 'hashAll', 'homeHash']],
    ['$SYS/broker/uptime', ['sys']], // MQTT-4.7.2-1: not `#`, not `+/kitchen/+`
    ['$SYS', ['sys']],
    ['a//b', ['emptyLevel', 'hashAll', 'plusEmpty']],
    ['a/b', ['hashAll']],
    ['/a', ['hashAll', 'leadingSlash']],
    ['a', ['hashAll']],
  ])('%j reaches %j', (topic, expected) => {
    expect(receivers(index, topic)).toEqual(expected);
    expect(receivers(index, topic)).toEqual(expected); // and the same from the cache
  });

  it('counts each client and filter once', () => expect(index.size).toBe(Object.keys(filters).length));

  it('agrees with topicMatchesFilter on every pair of a universe of filters and topics', () => {
    const levels = ['a', 'b', '', '$x', '+', '#'];
    const all: string[] = [];
    const grow = (prefix: string, depth: number): void => {
      for (const level of levels) {
        const next = `${prefix}/${level}`;
        all.push(next);
        if (depth > 1 && level !== '#') grow(next, depth - 1);
      }
    };
    for (const level of levels) {
      all.push(level);
      if (level !== '#') grow(level, 2);
    }
    const filters = all.filter((f) => topicFilterProblem(f) === undefined);
    const universe = new SubscriptionIndex();
    for (const filter of filters) universe.add(filter, sub(filter)); // the client id is the filter
    const topics = all.filter((t) => t !== '' && !t.includes('+') && !t.includes('#'));
    for (const topic of topics) {
      const expected = filters.filter((filter) => topicMatchesFilter(filter, topic)).sort();
      expect(receivers(universe, topic), topic).toEqual(expected);
    }
    expect(topics.length).toBeGreaterThan(50);
  });
});

describe('SubscriptionIndex add and remove', () => {
  it('replaces the subscription of a client to the same filter', () => {
    const index = new SubscriptionIndex();
    expect(index.add('c', sub('a/b', { qos: 2, identifier: 7 }))).toBe(true);
    expect(only(index.match('a/b', undefined, everyone))).toMatchObject({ qos: 2, subscriptionIds: [7] });
    expect(index.add('c', sub('a/b', { qos: 1 }))).toBe(false);
    expect(only(index.match('a/b', undefined, everyone))).toEqual({ clientId: 'c', qos: 1, subscriptionIds: undefined, retainAsPublished: false });
    expect(index.size).toBe(1);
  });

  it('removes one subscription and leaves the others', () => {
    const index = new SubscriptionIndex();
    index.add('c', sub('a/+'));
    index.add('c', sub('a/b'));
    index.add('d', sub('a/b'));
    expect(index.remove('c', 'a/b')).toBe(true);
    expect(index.remove('c', 'a/b')).toBe(false);
    expect(index.remove('c', 'a/b/c')).toBe(false);
    expect(index.remove('nobody', 'a/b')).toBe(false);
    expect(index.size).toBe(2);
    expect(only(index.match('a/x', undefined, everyone)).clientId).toBe('c'); // still through a/+
    expect(receivers(index, 'a/b')).toEqual(['c', 'd']);
    expect(index.remove('c', 'a/+')).toBe(true);
    expect(receivers(index, 'a/b')).toEqual(['d']);
    expect(index.remove('d', 'a/b')).toBe(true);
    expect(index.size).toBe(0);
    expect(index.match('a/b', undefined, everyone)).toEqual([]);
  });

  it('works again after a branch was emptied and pruned', () => {
    const index = new SubscriptionIndex();
    index.add('c', sub('a/+/c/#'));
    index.remove('c', 'a/+/c/#');
    expect(index.match('a/b/c', undefined, everyone)).toEqual([]);
    index.add('c', sub('a/+/c/#'));
    expect(receivers(index, 'a/b/c/d')).toEqual(['c']);
  });

  it('never answers from the cache what the index held before an add or a remove', () => {
    const index = new SubscriptionIndex();
    index.add('a', sub('t/#'));
    expect(receivers(index, 't/x')).toEqual(['a']);
    index.add('b', sub('t/+'));
    expect(receivers(index, 't/x')).toEqual(['a', 'b']);
    index.add('b', sub('t/+', { qos: 2 }));
    expect(index.match('t/x', undefined, everyone).find((m) => m.clientId === 'b')?.qos).toBe(2);
    index.remove('a', 't/#');
    expect(receivers(index, 't/x')).toEqual(['b']);
    index.add('s', sub('$share/g/t/x'));
    expect(receivers(index, 't/x')).toEqual(['b', 's']);
    index.remove('s', '$share/g/t/x');
    expect(receivers(index, 't/x')).toEqual(['b']);
  });

  it('bounds the cache, and stays right when it fills up and starts again', () => {
    const index = new SubscriptionIndex(3);
    index.add('c', sub('t/+'));
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 10; i++) {
        expect(receivers(index, `t/${i}`)).toEqual(['c']);
        expect(index.cachedTopics).toBeLessThanOrEqual(3);
      }
    }
    expect(index.cachedTopics).toBeGreaterThan(0);
    index.add('d', sub('u'));
    expect(index.cachedTopics).toBe(0);
  });

  it('returns a fresh array whose changes do not reach the next match', () => {
    const index = new SubscriptionIndex();
    index.add('c', sub('a', { identifier: 1 }));
    const first = index.match('a', undefined, everyone);
    first[0]?.subscriptionIds?.push(99);
    first.pop();
    expect(index.match('a', undefined, everyone)).toEqual([{ clientId: 'c', qos: 0, subscriptionIds: [1], retainAsPublished: false }]);
  });
});

describe('SubscriptionIndex aggregation and no-local', () => {
  it('gives a client one Match with the highest QoS, every identifier ascending, and retain-as-published if any', () => {
    const index = new SubscriptionIndex();
    index.add('c', sub('a/b', { qos: 1, identifier: 30 }));
    index.add('c', sub('a/+', { qos: 2, identifier: 5 }));
    index.add('c', sub('#', { qos: 0, retainAsPublished: true }));
    index.add('c', sub('a/#', { qos: 0, identifier: 12 }));
    index.add('c', sub('+/b', { qos: 1, identifier: 12 })); // an identifier two subscriptions share, once
    index.add('d', sub('a/b'));
    const matches = index.match('a/b', undefined, everyone);
    expect(matches).toHaveLength(2);
    expect(matches.find((m) => m.clientId === 'c')).toEqual({ clientId: 'c', qos: 2, subscriptionIds: [5, 12, 30], retainAsPublished: true });
    expect(matches.find((m) => m.clientId === 'd')).toEqual({ clientId: 'd', qos: 0, subscriptionIds: undefined, retainAsPublished: false });
    // Across calls, the aggregation starts again.
    expect(index.match('a/x', undefined, everyone)).toEqual([{ clientId: 'c', qos: 2, subscriptionIds: [5, 12], retainAsPublished: true }]);
  });

  it('sets retain-as-published when any matching subscription has it, the first or a later one', () => {
    const index = new SubscriptionIndex();
    index.add('first', sub('a/b', { retainAsPublished: true }));
    index.add('first', sub('a/+'));
    index.add('later', sub('a/b'));
    index.add('later', sub('a/+', { retainAsPublished: true }));
    index.add('none', sub('a/b'));
    index.add('none', sub('a/+'));
    const matches = index.match('a/b', undefined, everyone);
    expect(Object.fromEntries(matches.map((m) => [m.clientId, m.retainAsPublished]))).toEqual({ first: true, later: true, none: false });
  });

  it('skips the no-local subscriptions of the publisher only', () => {
    const index = new SubscriptionIndex();
    index.add('me', sub('a/b', { noLocal: true }));
    index.add('other', sub('a/b', { noLocal: true }));
    expect(receivers(index, 'a/b', 'me')).toEqual(['other']);
    expect(receivers(index, 'a/b', undefined)).toEqual(['me', 'other']);
  });

  it('still delivers through another matching subscription of the publisher without no-local', () => {
    const index = new SubscriptionIndex();
    index.add('me', sub('a/b', { noLocal: true, qos: 2, identifier: 1 }));
    index.add('me', sub('a/+', { qos: 1, identifier: 2 }));
    expect(index.match('a/b', 'me', everyone)).toEqual([{ clientId: 'me', qos: 1, subscriptionIds: [2], retainAsPublished: false }]);
  });
});

describe('SubscriptionIndex shared subscriptions', () => {
  const count = (picks: string[]): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (const id of picks) counts[id] = (counts[id] ?? 0) + 1;
    return counts;
  };

  it('gives each message to one member, round-robin: 9 messages to 3 members are 3 each', () => {
    const index = new SubscriptionIndex();
    for (const member of ['m1', 'm2', 'm3']) index.add(member, sub('$share/g/jobs/+'));
    const picks: string[] = [];
    for (let i = 0; i < 9; i++) picks.push(only(index.match('jobs/run', undefined, everyone)).clientId);
    expect(count(picks)).toEqual({ m1: 3, m2: 3, m3: 3 });
    expect(picks.slice(0, 3).sort()).toEqual(['m1', 'm2', 'm3']); // a rotation, not 3 of one then 3 of the next
  });

  it('rotates across different topics of the same filter', () => {
    const index = new SubscriptionIndex();
    for (const member of ['m1', 'm2']) index.add(member, sub('$share/g/jobs/#'));
    const picks = ['jobs/a', 'jobs/b', 'jobs/a', 'jobs/c'].map((t) => only(index.match(t, undefined, everyone)).clientId);
    expect(count(picks)).toEqual({ m1: 2, m2: 2 });
  });

  it('skips members that are not eligible, and picks round-robin anyway when none is', () => {
    const index = new SubscriptionIndex();
    for (const member of ['m1', 'm2', 'm3']) index.add(member, sub('$share/g/t'));
    const online = (id: string): boolean => id !== 'm2';
    const picks = Array.from({ length: 6 }, () => only(index.match('t', undefined, online)).clientId);
    expect(count(picks)).toEqual({ m1: 3, m3: 3 });
    const offline = Array.from({ length: 6 }, () => only(index.match('t', undefined, nobody)).clientId);
    expect(count(offline)).toEqual({ m1: 2, m2: 2, m3: 2 });
  });

  it('picks one member per group and per filter', () => {
    const index = new SubscriptionIndex();
    index.add('a1', sub('$share/a/t/+'));
    index.add('a2', sub('$share/a/t/+'));
    index.add('b1', sub('$share/b/t/+'));
    index.add('a3', sub('$share/a/t/#')); // same group name, another filter: its own pick
    index.add('plain', sub('t/x'));
    expect(receivers(index, 't/x')).toEqual(['a1', 'a3', 'b1', 'plain']);
    expect(receivers(index, 't/x')).toEqual(['a2', 'a3', 'b1', 'plain']);
    expect(index.size).toBe(5);
  });

  it('gives one aggregated Match to a client that gets a message both shared and through its own subscription', () => {
    const index = new SubscriptionIndex();
    index.add('c', sub('$share/g/t', { qos: 2, identifier: 9 }));
    index.add('c', sub('t', { qos: 0, identifier: 3, retainAsPublished: true }));
    expect(index.match('t', undefined, everyone)).toEqual([{ clientId: 'c', qos: 2, subscriptionIds: [3, 9], retainAsPublished: true }]);
  });

  it('keeps a shared member apart from the same client\u2019s non-shared subscription when removing', () => {
    const index = new SubscriptionIndex();
    index.add('c', sub('$share/g/t'));
    index.add('c', sub('t'));
    expect(index.remove('c', '$share/h/t')).toBe(false);
    expect(index.remove('c', '$share/g/t')).toBe(true);
    expect(receivers(index, 't')).toEqual(['c']);
    expect(index.remove('c', 't')).toBe(true);
    expect(index.match('t', undefined, everyone)).toEqual([]);
  });

  it('goes on rotating fairly after a member leaves', () => {
    const index = new SubscriptionIndex();
    for (const member of ['m1', 'm2', 'm3']) index.add(member, sub('$share/g/t'));
    expect(only(index.match('t', undefined, everyone)).clientId).toBe('m1');
    expect(only(index.match('t', undefined, everyone)).clientId).toBe('m2');
    index.remove('m1', '$share/g/t');
    const picks = Array.from({ length: 4 }, () => only(index.match('t', undefined, everyone)).clientId);
    expect(picks).toEqual(['m3', 'm2', 'm3', 'm2']);
  });

  it('applies the $ rule to the filter inside $share', () => {
    const index = new SubscriptionIndex();
    index.add('c', sub('$share/g/#'));
    expect(index.match('$SYS/x', undefined, everyone)).toEqual([]);
    expect(receivers(index, 'x')).toEqual(['c']);
  });

  it('replaces a member on a second subscribe with the same filter', () => {
    const index = new SubscriptionIndex();
    expect(index.add('c', sub('$share/g/t', { qos: 0 }))).toBe(true);
    expect(index.add('c', sub('$share/g/t', { qos: 2 as QoS }))).toBe(false);
    expect(index.size).toBe(1);
    expect(only(index.match('t', undefined, everyone)).qos).toBe(2);
  });
});

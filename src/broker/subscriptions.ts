/**
 * The subscription index: which clients receive a message published to a topic. On the hot path of every
 * PUBLISH, so it is built for it: a trie keyed by topic level (the `+` and `#` children apart), a bounded
 * per-topic cache of the subscriptions a topic matches (cleared on every change), and aggregation of a
 * client's overlapping subscriptions without a Map per call (a generation stamp on the client's record).
 * Shared subscriptions (`$share/GROUP/FILTER`) deliver each message to one member of the group, round-robin.
 */
import type { QoS } from './message.js';
import type { StoredSubscription } from './store/store.js';
import { parseSharedFilter } from './topics.js';

export interface Match {
  clientId: string;
  /** Highest QoS among this client's matching subscriptions (the broker then takes min(message qos, this)). */
  qos: QoS;
  /** Identifiers of all matching subscriptions of this client that have one, ascending; undefined if none. */
  subscriptionIds: number[] | undefined;
  /** true if any matching subscription of this client has retainAsPublished. */
  retainAsPublished: boolean;
}

/** One client as the index knows it: how many subscriptions it holds, and its place in the current match(). */
interface ClientRecord {
  readonly clientId: string;
  subscriptions: number;
  /** The match() call that last gave this client a Match, and that Match's index in its result. */
  stamp: number;
  slot: number;
}

/** One subscription, flattened for the hot path. */
interface Entry {
  readonly client: ClientRecord;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly identifier: number | undefined;
}

/** The members of one share name on one filter, and whose turn is next. */
interface SharedGroup {
  readonly members: Entry[];
  next: number;
}

interface TrieNode {
  children: Map<string, TrieNode> | undefined;
  plus: TrieNode | undefined;
  /** The `#` level under this node: only its subscriptions are used. */
  hash: TrieNode | undefined;
  /** Non-shared subscriptions whose filter ends here, by client id. */
  subscriptions: Map<string, Entry> | undefined;
  /** Shared subscriptions whose filter ends here, by share name. */
  groups: Map<string, SharedGroup> | undefined;
}

/** What a topic matches, before no-local and the shared picks: reusable until the index changes. */
interface CachedMatch {
  readonly entries: Entry[];
  readonly groups: SharedGroup[];
}

const newNode = (): TrieNode => ({ children: undefined, plus: undefined, hash: undefined, subscriptions: undefined, groups: undefined });

const isEmpty = (node: TrieNode): boolean =>
  node.children === undefined && node.plus === undefined && node.hash === undefined &&
  node.subscriptions === undefined && node.groups === undefined;

export class SubscriptionIndex {
  readonly #root = newNode();
  readonly #clients = new Map<string, ClientRecord>();
  readonly #cache = new Map<string, CachedMatch>();
  readonly #cacheLimit: number;
  #size = 0;
  #generation = 0;

  /** @param cacheLimit how many topics' matches are remembered before the cache is emptied and starts again. */
  constructor(cacheLimit = 10_000) {
    this.#cacheLimit = cacheLimit;
  }

  /** Number of subscriptions held (each clientId+filter once). */
  get size(): number {
    return this.#size;
  }

  /** How many topics' matches the cache holds now (for metrics and tests). */
  get cachedTopics(): number {
    return this.#cache.size;
  }

  /** Add or replace (same clientId + same full filter string) a subscription. Returns true if it is new (not a replacement). */
  add(clientId: string, sub: StoredSubscription): boolean {
    this.#cache.clear();
    const shared = parseSharedFilter(sub.filter);
    let node = this.#root;
    for (const level of (shared ? shared.filter : sub.filter).split('/')) node = this.#child(node, level, true) as TrieNode;
    let client = this.#clients.get(clientId);
    if (client === undefined) {
      client = { clientId, subscriptions: 0, stamp: 0, slot: 0 };
      this.#clients.set(clientId, client);
    }
    const entry: Entry = {
      client, qos: sub.qos, noLocal: sub.noLocal, retainAsPublished: sub.retainAsPublished, identifier: sub.identifier,
    };
    let replaced: boolean;
    if (shared) {
      node.groups ??= new Map();
      let group = node.groups.get(shared.group);
      if (group === undefined) {
        group = { members: [], next: 0 };
        node.groups.set(shared.group, group);
      }
      const at = group.members.findIndex((member) => member.client === client);
      replaced = at !== -1;
      if (replaced) group.members[at] = entry;
      else group.members.push(entry);
    } else {
      node.subscriptions ??= new Map();
      replaced = node.subscriptions.has(clientId);
      node.subscriptions.set(clientId, entry);
    }
    if (!replaced) {
      client.subscriptions++;
      this.#size++;
    }
    return !replaced;
  }

  /** Remove the subscription of `clientId` to `filter` (the full filter string); false if there was none. */
  remove(clientId: string, filter: string): boolean {
    const client = this.#clients.get(clientId);
    if (client === undefined) return false;
    const shared = parseSharedFilter(filter);
    const levels = (shared ? shared.filter : filter).split('/');
    const path: TrieNode[] = [this.#root];
    for (const level of levels) {
      const next = this.#child(path[path.length - 1] as TrieNode, level, false);
      if (next === undefined) return false;
      path.push(next);
    }
    const node = path[path.length - 1] as TrieNode;
    if (shared) {
      const group = node.groups?.get(shared.group);
      const at = group ? group.members.findIndex((member) => member.client === client) : -1;
      if (group === undefined || at === -1) return false;
      group.members.splice(at, 1);
      if (at < group.next) group.next--;
      if (group.members.length === 0) node.groups?.delete(shared.group);
      if (node.groups?.size === 0) node.groups = undefined;
    } else {
      if (node.subscriptions?.delete(clientId) !== true) return false;
      if (node.subscriptions.size === 0) node.subscriptions = undefined;
    }
    this.#cache.clear();
    this.#size--;
    if (--client.subscriptions === 0) this.#clients.delete(clientId);
    this.#prune(path, levels);
    return true;
  }

  /**
   * Every client that should receive a message published to `topic` by `publisher` (undefined = the broker),
   * one Match per client however many of its subscriptions match. No-local subscriptions of the publisher are
   * skipped. Each shared (group, filter) with matching members gives the message to one member, round-robin
   * over those for which `eligible` is true (or, when none is, over all of them: the session queues it).
   */
  match(topic: string, publisher: string | undefined, eligible: (clientId: string) => boolean): Match[] {
    let cached = this.#cache.get(topic);
    if (cached === undefined) {
      cached = this.#lookup(topic);
      if (this.#cache.size >= this.#cacheLimit) this.#cache.clear();
      this.#cache.set(topic, cached);
    }
    // The picks first: `eligible` is the caller's code, and must run before the generation is taken.
    const picks = cached.groups.length === 0 ? undefined : pickShared(cached.groups, publisher, eligible);
    const generation = ++this.#generation;
    const result: Match[] = [];
    for (const entry of cached.entries) {
      if (entry.noLocal && entry.client.clientId === publisher) continue;
      collect(result, entry, generation);
    }
    if (picks !== undefined) for (const entry of picks) collect(result, entry, generation);
    return result;
  }

  /** The node under `node` for one filter level; created when missing and `create`. */
  #child(node: TrieNode, level: string, create: boolean): TrieNode | undefined {
    if (level === '+') return create ? (node.plus ??= newNode()) : node.plus;
    if (level === '#') return create ? (node.hash ??= newNode()) : node.hash;
    let child = node.children?.get(level);
    if (child === undefined && create) {
      child = newNode();
      (node.children ??= new Map()).set(level, child);
    }
    return child;
  }

  /** Drop the nodes of `path` (root first, one per level) that hold nothing any more, deepest first. */
  #prune(path: TrieNode[], levels: string[]): void {
    for (let i = path.length - 1; i > 0; i--) {
      const node = path[i] as TrieNode;
      if (!isEmpty(node)) return;
      const parent = path[i - 1] as TrieNode;
      const level = levels[i - 1] as string;
      if (level === '+') parent.plus = undefined;
      else if (level === '#') parent.hash = undefined;
      else {
        parent.children?.delete(level);
        if (parent.children?.size === 0) parent.children = undefined;
      }
    }
  }

  /** Walk the trie for a topic: every non-shared subscription and shared group whose filter matches it. */
  #lookup(topic: string): CachedMatch {
    const found: CachedMatch = { entries: [], groups: [] };
    const levels = topic.split('/');
    // MQTT-4.7.2-1: a `$` topic does not match a filter whose first level is a wildcard.
    const root = this.#root;
    if (topic.charCodeAt(0) !== 0x24) {
      if (root.hash) take(found, root.hash);
      if (root.plus) walk(root.plus, levels, 1, found);
    }
    const child = root.children?.get(levels[0] as string);
    if (child) walk(child, levels, 1, found);
    return found;
  }
}

/** Collect from `node`, which matched levels[0..i-1], and from the nodes under it that match the rest. */
function walk(node: TrieNode, levels: string[], i: number, found: CachedMatch): void {
  if (node.hash) take(found, node.hash); // `a/#` matches `a` and everything under it
  if (i === levels.length) {
    take(found, node);
    return;
  }
  const child = node.children?.get(levels[i] as string);
  if (child) walk(child, levels, i + 1, found);
  if (node.plus) walk(node.plus, levels, i + 1, found);
}

function take(found: CachedMatch, node: TrieNode): void {
  if (node.subscriptions) for (const entry of node.subscriptions.values()) found.entries.push(entry);
  if (node.groups) for (const group of node.groups.values()) found.groups.push(group);
}

/** One member of each group, round-robin; eligible members first, anyone when none is. */
function pickShared(groups: SharedGroup[], publisher: string | undefined, eligible: (clientId: string) => boolean): Entry[] {
  const picks: Entry[] = [];
  for (const group of groups) {
    const { members } = group;
    const n = members.length;
    const start = group.next % n;
    let fallback = -1;
    let chosen = -1;
    for (let k = 0; k < n; k++) {
      const at = (start + k) % n;
      const member = members[at] as Entry;
      // No-local is a protocol error on a shared subscription (MQTT-3.8.3-4); if one got here anyway, honour it.
      if (member.noLocal && member.client.clientId === publisher) continue;
      if (eligible(member.client.clientId)) {
        chosen = at;
        break;
      }
      if (fallback === -1) fallback = at;
    }
    if (chosen === -1) chosen = fallback;
    if (chosen === -1) continue;
    group.next = chosen + 1;
    picks.push(members[chosen] as Entry);
  }
  return picks;
}

/** Add `entry` to the result: a new Match for its client's first subscription in this call, else aggregate. */
function collect(result: Match[], entry: Entry, generation: number): void {
  const client = entry.client;
  const id = entry.identifier;
  if (client.stamp !== generation) {
    client.stamp = generation;
    client.slot = result.length;
    result.push({
      clientId: client.clientId, qos: entry.qos, subscriptionIds: id === undefined ? undefined : [id],
      retainAsPublished: entry.retainAsPublished,
    });
    return;
  }
  const match = result[client.slot] as Match;
  if (entry.qos > match.qos) match.qos = entry.qos;
  if (entry.retainAsPublished) match.retainAsPublished = true;
  if (id === undefined) return;
  const ids = match.subscriptionIds;
  if (ids === undefined) {
    match.subscriptionIds = [id];
    return;
  }
  // Ascending, each identifier once (several subscriptions may share one).
  let at = ids.length;
  while (at > 0 && (ids[at - 1] as number) > id) at--;
  if (at > 0 && ids[at - 1] === id) return;
  ids.splice(at, 0, id);
}

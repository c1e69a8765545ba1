/**
 * Topic names and topic filters (MQTT 5 section 4.7, MQTT 3.1.1 section 4.7): why a name or a filter is
 * invalid, the parts of a `$share/GROUP/FILTER` subscription, and whether a filter matches a name. Pure
 * functions, no state: the PUBLISH and SUBSCRIBE handlers validate with them, the subscription index and the
 * retained store match with them. Strings arrive already decoded (invalid UTF-8 is the parser's concern).
 */

/** The longest topic (name or filter) an MQTT string can carry, in UTF-8 bytes. */
const MAX_TOPIC_BYTES = 65_535;
const SHARE_PREFIX = '$share/';
const DOLLAR = 0x24;

/** True when `text` is longer than 65535 UTF-8 bytes (counted only when it could be: 3 bytes per code unit at most). */
function tooLong(text: string): boolean {
  return text.length > MAX_TOPIC_BYTES / 3 && Buffer.byteLength(text, 'utf8') > MAX_TOPIC_BYTES;
}

/** Why `topic` cannot be the topic name of a PUBLISH (or a will), or undefined when it can. */
export function topicNameProblem(topic: string): string | undefined {
  if (topic.length === 0) return 'the topic name is empty';
  if (topic.includes('+') || topic.includes('#')) return `the topic name "${topic}" contains a wildcard (+ or #)`;
  if (topic.includes('\u0000')) return 'the topic name contains the null character U+0000';
  if (tooLong(topic)) return `the topic name is longer than ${MAX_TOPIC_BYTES} UTF-8 bytes`;
  return undefined;
}

/** Why `filter` (a non-shared filter, or the part after `$share/GROUP/`) is invalid, or undefined. */
function plainFilterProblem(filter: string, what: string): string | undefined {
  if (filter.length === 0) return `the ${what} is empty`;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return `the ${what} "${filter}" has a # that is not the whole last level`;
    }
    if (level.includes('+') && level !== '+') {
      return `the ${what} "${filter}" has a + that is not a whole level`;
    }
  }
  return undefined;
}

/** Why `filter` cannot be the topic filter of a SUBSCRIBE or UNSUBSCRIBE, or undefined when it can. */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'the topic filter is empty';
  if (filter.includes('\u0000')) return 'the topic filter contains the null character U+0000';
  if (tooLong(filter)) return `the topic filter is longer than ${MAX_TOPIC_BYTES} UTF-8 bytes`;
  if (!filter.startsWith(SHARE_PREFIX)) return plainFilterProblem(filter, 'topic filter');
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  const group = filter.slice(SHARE_PREFIX.length, slash === -1 ? undefined : slash);
  if (group.length === 0) return `the shared subscription "${filter}" has an empty share name`;
  if (group.includes('+') || group.includes('#')) {
    return `the share name "${group}" of "${filter}" contains a wildcard (+ or #)`;
  }
  if (slash === -1) return `the shared subscription "${filter}" has no topic filter after $share/${group}/`;
  return plainFilterProblem(filter.slice(slash + 1), `topic filter of the shared subscription "${filter}"`);
}

/**
 * The share name and the topic filter of `$share/GROUP/FILTER`; undefined when `filter` is not of that form
 * (a non-shared filter, or `$share/GROUP` without a filter). The parts are not validated: see topicFilterProblem.
 */
export function parseSharedFilter(filter: string): { group: string; filter: string } | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  if (slash === -1) return undefined;
  return { group: filter.slice(SHARE_PREFIX.length, slash), filter: filter.slice(slash + 1) };
}

/** True when a filter's first level is a wildcard, so that it must not match a `$` topic (MQTT-4.7.2-1). */
function startsWithWildcard(filter: string): boolean {
  return filter === '#' || filter === '+' || filter.startsWith('+/');
}

/**
 * Whether the (valid, non-shared) topic filter matches the topic name. `+` is one whole level, `#` the rest
 * including the parent level (`a/#` matches `a`); empty levels are levels; a topic starting with `$` does not
 * match a filter whose first level is a wildcard (MQTT-4.7.2-1). For many topics, compileFilter is faster.
 */
export function topicMatchesFilter(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === DOLLAR && startsWithWildcard(filter)) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** `text` as a regular expression that matches it literally. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * topicMatchesFilter with the filter fixed: the filter is analysed once, and the returned function is cheap
 * enough to call on every retained topic at SUBSCRIBE time. The filter must be valid and non-shared.
 */
export function compileFilter(filter: string): (topic: string) => boolean {
  const hasPlus = filter.includes('+');
  const hasHash = filter.endsWith('#');
  if (!hasPlus && !hasHash) return (topic) => topic === filter;
  if (filter === '#') return (topic) => topic.charCodeAt(0) !== DOLLAR;
  if (!hasPlus) {
    // `a/b/#`: the parent `a/b` itself, or anything under `a/b/`.
    const parent = filter.slice(0, -2);
    const prefix = filter.slice(0, -1);
    return (topic) => topic.startsWith(prefix) || topic === parent;
  }
  const levels = filter.split('/');
  const rest = hasHash ? levels.slice(0, -1) : levels;
  const body = rest.map((level) => (level === '+' ? '[^/]*' : escapeRegExp(level))).join('/');
  const guard = startsWithWildcard(filter) ? '(?!\\$)' : '';
  const pattern = new RegExp(`^${guard}${body}${hasHash ? '(?:/.*)?' : ''}$`, 's');
  return (topic) => pattern.test(topic);
}

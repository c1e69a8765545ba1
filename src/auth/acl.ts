/**
 * mosquitto ACL files (`acl_file`), with mosquitto 2.0 semantics.
 *
 *   # comment
 *   topic [read|write|readwrite|deny] TOPIC     before the first `user` line: anonymous clients only
 *   user NAME                                   starts NAME's section (NAME is the rest of the line)
 *   topic [read|write|readwrite|deny] TOPIC     in a section: that user only
 *   pattern [read|write|readwrite|deny] TOPIC   every client, wherever it appears; %c = client id, %u = user
 *
 * Parsing follows mosquitto 2.0.11: the access word is optional (readwrite), TOPIC is the rest of the line
 * (it may contain spaces), so `topic read` alone means the topic "read" with readwrite access; a topic
 * filter with a misplaced wildcard, an unknown access word, `user` without a name or an unknown directive
 * is an error (mosquitto refuses to start). We are lenient where mosquitto is not, but never the other way
 * round: indented comments and tabs between words are accepted.
 *
 * Decisions (checked against Debian's mosquitto 2.0.11 where possible):
 * - Deny wins: any matching `deny` rule that applies to the client refuses, whatever the order of lines.
 *   mosquitto also puts deny rules first, but checks a user's `topic` rules before the `pattern` rules, so
 *   there a pattern deny cannot take back a topic grant; here it can (stricter).
 * - `%c` / `%u` are substituted wherever they occur, also inside a level (`dev-%c/#`), as mosquitto 2.0.11
 *   does (checked; 2.1 substitutes whole levels only). A pattern does not apply to a client whose
 *   substituted value contains `+`, `#` or `/` (else a client named `#` could read everything; mosquitto
 *   2.0.11 checks `+` and `#` only) or is empty; a `%u` pattern does not apply to anonymous clients.
 * - Topics starting with `$` are never matched by an ACL whose first level is `+` or `#` (MQTT 4.7.2).
 * - Subscribe: mosquitto 2.0.11 grants every SUBSCRIBE and filters each message at delivery (checked).
 *   We answer 0x80 for a filter that can never deliver anything to this client: no readable rule overlaps
 *   it (some topic matches both), or a deny rule covers it. Any overlap grants, as in mosquitto, so
 *   `sensors/#` with rules `read sensors/+/temp` + `read sensors/+/hum` is granted and canReceive() drops
 *   the other topics at delivery, which the broker checks for every message (retained ones too).
 */
import { readText } from '../files/read.js';
import type { Logger } from '../log.js';

export type Access = 'read' | 'write' | 'readwrite' | 'deny';

const READ = 1;
const WRITE = 2;

export class AclError extends Error {
  override readonly name = 'AclError';
  constructor(
    message: string,
    readonly source: string,
    readonly line: number,
  ) {
    super(`${source}:${line}: ${message}`);
  }
}

export interface AclRule {
  kind: 'topic' | 'pattern';
  access: Access;
  /** The topic filter as written (patterns unsubstituted). */
  topic: string;
  /** For `topic` rules: the user section, or undefined for the anonymous section. */
  user: string | undefined;
  line: number;
}

/** The rules that apply to one connected client, compiled once; the checks allocate nothing. */
export interface ClientAcl {
  /** May the client publish to `topic` (write access)? */
  canPublish(topic: string): boolean;
  /** May the client be sent a message on `topic` (read access)? Check it for every delivery. */
  canReceive(topic: string): boolean;
  /** May the client subscribe to `filter`? (some readable topic overlaps it and no deny covers it; see file doc) */
  canSubscribe(filter: string): boolean;
}

interface Compiled {
  levels: readonly string[];
  /** READ | WRITE bits; 0 for deny. */
  bits: number;
}

/** Does a topic (no wildcards) match a pre-split filter? Walks the topic in place, allocating nothing. */
export function topicMatches(filter: readonly string[], topic: string): boolean {
  const first = filter[0];
  if (topic.charCodeAt(0) === 36 /* $ */ && (first === '+' || first === '#')) return false;
  const len = topic.length;
  let pos = 0;
  for (let i = 0; i < filter.length; i++) {
    const f = filter[i] as string;
    if (f === '#') return true; // also matches the parent level: `a/#` matches `a`
    if (pos > len) return false; // the topic has fewer levels
    let end = topic.indexOf('/', pos);
    if (end === -1) end = len;
    if (f !== '+' && (end - pos !== f.length || !topic.startsWith(f, pos))) return false;
    pos = end + 1;
  }
  return pos === len + 1;
}

/** Does the ACL filter `acl` cover the subscription filter `sub`, i.e. match every topic `sub` can match? */
export function filterCovers(acl: readonly string[], sub: readonly string[]): boolean {
  if ((sub[0] ?? '').startsWith('$') && (acl[0] === '+' || acl[0] === '#')) return false;
  for (let i = 0; i < acl.length; i++) {
    const a = acl[i] as string;
    if (a === '#') return true;
    if (i >= sub.length) return false;
    const s = sub[i] as string;
    if (s === '#') return false;
    if (a === '+') continue;
    if (s === '+' || s !== a) return false;
  }
  return sub.length === acl.length;
}

/** Can some topic match both filters? (`a/#` also matches `a`; `$` topics only match an explicit `$` level.) */
export function filtersOverlap(a: readonly string[], b: readonly string[]): boolean {
  const a0 = a[0] ?? '';
  const b0 = b[0] ?? '';
  if ((a0.startsWith('$') && (b0 === '+' || b0 === '#')) || (b0.startsWith('$') && (a0 === '+' || a0 === '#'))) return false;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#' || y === '#') return true;
    if (x === undefined || y === undefined) return false;
    if (x !== '+' && y !== '+' && x !== y) return false;
  }
  return true;
}

/** mosquitto_sub_topic_check: `+` and `#` must fill a level, `#` must be last. Returns a reason or undefined. */
export function filterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'empty topic';
  if (Buffer.byteLength(filter, 'utf8') > 65535) return 'topic longer than 65535 bytes';
  if (filter.includes('\u0000')) return 'topic contains a NUL character';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i] as string;
    if (l.includes('+') && l !== '+') return `"+" must fill a whole topic level`;
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return `"#" must be the last topic level, on its own`;
  }
  return undefined;
}

function accessBits(access: Access): number {
  switch (access) {
    case 'read':
      return READ;
    case 'write':
      return WRITE;
    case 'readwrite':
      return READ | WRITE;
    case 'deny':
      return 0;
  }
}

const ACCESS_WORDS: ReadonlySet<string> = new Set(['read', 'write', 'readwrite', 'deny']);

function hasDangerousChars(value: string): boolean {
  return value.includes('+') || value.includes('#') || value.includes('/');
}

/** Substitute %c and %u as mosquitto 2.0.11 does (left to right, anywhere). Undefined: the pattern does not apply. */
function substitute(pattern: string, clientId: string, username: string | undefined): string | undefined {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '%' && i < pattern.length - 1) {
      const next = pattern[i + 1];
      if (next === 'c') {
        if (clientId === '' || hasDangerousChars(clientId)) return undefined;
        out += clientId;
        i += 1;
        continue;
      }
      if (next === 'u') {
        if (username === undefined || username === '' || hasDangerousChars(username)) return undefined;
        out += username;
        i += 1;
        continue;
      }
    }
    out += ch;
  }
  return out;
}

class CompiledClientAcl implements ClientAcl {
  readonly #denies: readonly Compiled[];
  readonly #grants: readonly Compiled[];

  constructor(denies: Compiled[], grants: Compiled[]) {
    this.#denies = denies;
    this.#grants = grants;
  }

  #check(topic: string, bit: number): boolean {
    const denies = this.#denies;
    for (let i = 0; i < denies.length; i++) {
      if (topicMatches((denies[i] as Compiled).levels, topic)) return false;
    }
    const grants = this.#grants;
    for (let i = 0; i < grants.length; i++) {
      const g = grants[i] as Compiled;
      if ((g.bits & bit) !== 0 && topicMatches(g.levels, topic)) return true;
    }
    return false;
  }

  canPublish(topic: string): boolean {
    return this.#check(topic, WRITE);
  }

  canReceive(topic: string): boolean {
    return this.#check(topic, READ);
  }

  canSubscribe(filter: string): boolean {
    if (filterProblem(filter) !== undefined) return false;
    const sub = filter.split('/');
    for (const d of this.#denies) if (filterCovers(d.levels, sub)) return false;
    for (const g of this.#grants) if ((g.bits & READ) !== 0 && filtersOverlap(g.levels, sub)) return true;
    return false;
  }
}

/** A parsed ACL file: an immutable snapshot. */
export class Acl {
  readonly #anonymous: readonly AclRule[];
  readonly #users: ReadonlyMap<string, readonly AclRule[]>;
  readonly #patterns: readonly AclRule[];

  /** @internal built by parseAcl */
  constructor(
    readonly source: string,
    readonly rules: readonly AclRule[],
    readonly warnings: readonly string[],
  ) {
    const users = new Map<string, AclRule[]>();
    const anonymous: AclRule[] = [];
    const patterns: AclRule[] = [];
    for (const r of rules) {
      if (r.kind === 'pattern') patterns.push(r);
      else if (r.user === undefined) anonymous.push(r);
      else {
        const list = users.get(r.user);
        if (list) list.push(r);
        else users.set(r.user, [r]);
      }
    }
    this.#anonymous = anonymous;
    this.#users = users;
    this.#patterns = patterns;
    Object.freeze(this);
  }

  /** User names that have a section. */
  users(): string[] {
    return [...this.#users.keys()];
  }

  /** Compile the rules that apply to one client (`username` undefined = anonymous). Call once per connection. */
  forClient(username: string | undefined, clientId: string): ClientAcl {
    const denies: Compiled[] = [];
    const grants: Compiled[] = [];
    const add = (topic: string, access: Access): void => {
      const c: Compiled = { levels: Object.freeze(topic.split('/')), bits: accessBits(access) };
      (access === 'deny' ? denies : grants).push(c);
    };
    const own = username === undefined ? this.#anonymous : (this.#users.get(username) ?? []);
    for (const r of own) add(r.topic, r.access);
    for (const r of this.#patterns) {
      const topic = substitute(r.topic, clientId, username);
      if (topic !== undefined) add(topic, r.access);
    }
    return new CompiledClientAcl(denies, grants);
  }
}

/** Parse an ACL file; throws AclError naming `source:line` on bad input. */
export function parseAcl(text: string, source: string): Acl {
  const rules: AclRule[] = [];
  const warnings: string[] = [];
  let user: string | undefined;
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const lineNo = index + 1;
    const line = (lines[index] as string).replace(/\s+$/, '');
    const body = line.replace(/^[ \t]+/, '');
    if (body === '' || body.startsWith('#')) continue;
    const m = /^(\S+)(?:[ \t]+(.*))?$/.exec(body);
    const directive = m?.[1] ?? '';
    const rest = m?.[2] ?? '';
    if (directive === 'user') {
      const name = rest.trim();
      if (name === '') throw new AclError('missing user name after "user"', source, lineNo);
      user = name;
      continue;
    }
    if (directive !== 'topic' && directive !== 'pattern') {
      throw new AclError(`unknown directive "${directive}" (expected topic, pattern or user)`, source, lineNo);
    }
    if (rest === '') throw new AclError(`empty topic after "${directive}"`, source, lineNo);
    const words = /^(\S+)(?:[ \t]+(.*))?$/.exec(rest);
    const first = words?.[1] ?? '';
    const after = (words?.[2] ?? '').trim();
    let access: Access = 'readwrite';
    let topic: string;
    if (after === '') {
      // One word: it is the topic (mosquitto: `topic read` is the topic "read", readwrite).
      topic = first;
    } else {
      if (!ACCESS_WORDS.has(first)) {
        throw new AclError(`invalid access "${first}" (expected read, write, readwrite or deny)`, source, lineNo);
      }
      access = first as Access;
      topic = after;
    }
    const problem = filterProblem(topic);
    if (problem !== undefined) throw new AclError(`invalid ACL topic "${topic}": ${problem}`, source, lineNo);
    if (directive === 'pattern' && !topic.includes('%c') && !topic.includes('%u')) {
      warnings.push(`${source}:${lineNo}: pattern "${topic}" contains neither %c nor %u`);
    }
    rules.push({ kind: directive, access, topic, user: directive === 'topic' ? user : undefined, line: lineNo });
  }
  return new Acl(source, Object.freeze(rules), Object.freeze(warnings));
}

/** Read and parse an ACL file, logging its warnings. Throws on I/O errors and on AclError. */
export async function loadAclFile(path: string, logger: Logger): Promise<Acl> {
  const text = await readText(path, 'ACL file');
  const acl = parseAcl(text, path);
  for (const w of acl.warnings) logger.warn({ file: path }, w);
  return acl;
}

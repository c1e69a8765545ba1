/**
 * When to renew, when to look again, how long to back off after a failure. Pure functions of the certificate's
 * validity, the current time and a random source, so they are tested with an injected clock.
 *
 * - A certificate is due for renewal when a third of its lifetime is left (Let's Encrypt's advice; 30 of
 *   90 days, 2 of 6 days for short-lived certificates).
 * - Checks run on a timer: at the due time, but at least every `maxCheckIntervalMs` (the store may change under
 *   us, clocks jump, and timers longer than 24.8 days overflow), never sooner than `minDelayMs`, with jitter so
 *   that a fleet does not hit the CA in the same second.
 * - After consecutive failures, retries back off exponentially from `backoffBaseMs` to `backoffMaxMs`, jittered,
 *   so no configuration can make a tight issuance loop.
 */

export interface RenewalPolicy {
  /** Renew when at most this fraction of the lifetime is left; default 1/3. */
  renewWhenRemaining: number;
  /** Upper bound between two checks; default 12 h. */
  maxCheckIntervalMs: number;
  /** Lower bound for any scheduled delay; default 60 s. */
  minDelayMs: number;
  /** Relative jitter added to a check delay, in [0, jitter); default 0.05 (at most 36 min on 12 h). */
  checkJitter: number;
  /** First retry delay after a failure; default 5 min. */
  backoffBaseMs: number;
  /** Retry delay cap; default 6 h. */
  backoffMaxMs: number;
  /** Relative jitter on retry delays, +/- this fraction; default 0.2. */
  backoffJitter: number;
}

export const DEFAULT_RENEWAL_POLICY: RenewalPolicy = {
  renewWhenRemaining: 1 / 3,
  maxCheckIntervalMs: 12 * 3600_000,
  minDelayMs: 60_000,
  checkJitter: 0.05,
  backoffBaseMs: 5 * 60_000,
  backoffMaxMs: 6 * 3600_000,
  backoffJitter: 0.2,
};

/** Largest delay setTimeout accepts (2^31 - 1 ms); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

export function resolvePolicy(partial?: Partial<RenewalPolicy>): RenewalPolicy {
  return { ...DEFAULT_RENEWAL_POLICY, ...partial };
}

/** The moment renewal becomes due: notAfter - lifetime * renewWhenRemaining. */
export function renewalDueAt(v: Validity, policy: Partial<RenewalPolicy> = {}): Date {
  const p = resolvePolicy(policy);
  const lifetime = Math.max(0, v.notAfter.getTime() - v.notBefore.getTime());
  return new Date(v.notAfter.getTime() - lifetime * p.renewWhenRemaining);
}

export function isDue(v: Validity, now: number, policy: Partial<RenewalPolicy> = {}): boolean {
  return now >= renewalDueAt(v, policy).getTime();
}

export function isExpired(v: Validity, now: number): boolean {
  return now >= v.notAfter.getTime();
}

function clampDelay(ms: number, p: RenewalPolicy): number {
  return Math.min(Math.max(ms, p.minDelayMs), MAX_TIMER_MS);
}

/**
 * Delay until the next renewal check: until the due time (plus jitter), capped at maxCheckIntervalMs, at least
 * minDelayMs. `random` returns [0, 1).
 */
export function nextCheckDelay(v: Validity, now: number, random: () => number = Math.random, policy: Partial<RenewalPolicy> = {}): number {
  const p = resolvePolicy(policy);
  const untilDue = renewalDueAt(v, p).getTime() - now;
  const base = Math.min(Math.max(untilDue, 0), p.maxCheckIntervalMs);
  return clampDelay(Math.round(base * (1 + p.checkJitter * random())), p);
}

/**
 * Delay before retry number `failures` (1 = after the first failure): base * 2^(failures-1), capped, with
 * +/- backoffJitter, at least minDelayMs.
 */
export function backoffDelay(failures: number, random: () => number = Math.random, policy: Partial<RenewalPolicy> = {}): number {
  const p = resolvePolicy(policy);
  const n = Math.max(1, Math.floor(failures));
  const raw = Math.min(p.backoffBaseMs * 2 ** Math.min(n - 1, 40), p.backoffMaxMs);
  const jittered = raw * (1 + p.backoffJitter * (2 * random() - 1));
  return clampDelay(Math.round(Math.min(jittered, p.backoffMaxMs * (1 + p.backoffJitter))), p);
}

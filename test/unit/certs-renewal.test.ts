import { describe, expect, it } from 'vitest';
import { DEFAULT_RENEWAL_POLICY, MAX_TIMER_MS, backoffDelay, isDue, isExpired, nextCheckDelay, renewalDueAt } from '../../src/certs/renewal.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2025-01-01T00:00:00Z');
const ninetyDays = { notBefore: new Date(T0), notAfter: new Date(T0 + 90 * DAY) };
const zero = (): number => 0;
const almostOne = (): number => 0.999999;

describe('renewal decisions (injected clock)', () => {
  it('a 90-day certificate is due 60 days in, when a third of its lifetime is left', () => {
    expect(renewalDueAt(ninetyDays).toISOString()).toBe(new Date(T0 + 60 * DAY).toISOString());
    expect(isDue(ninetyDays, T0 + 60 * DAY - 1)).toBe(false);
    expect(isDue(ninetyDays, T0 + 60 * DAY)).toBe(true);
    const sixDays = { notBefore: new Date(T0), notAfter: new Date(T0 + 6 * DAY) };
    expect(renewalDueAt(sixDays).getTime()).toBe(T0 + 4 * DAY);
    expect(isExpired(ninetyDays, T0 + 90 * DAY)).toBe(true);
    expect(isExpired(ninetyDays, T0 + 90 * DAY - 1)).toBe(false);
  });

  it('checks at least every 12 h with at most 5 % jitter while renewal is far away', () => {
    const now = T0 + DAY;
    expect(nextCheckDelay(ninetyDays, now, zero)).toBe(12 * HOUR);
    const max = nextCheckDelay(ninetyDays, now, almostOne);
    expect(max).toBeGreaterThan(12 * HOUR);
    expect(max).toBeLessThanOrEqual(12 * HOUR * 1.05);
  });

  it('checks at the due time when it is closer than the interval, and never sooner than the minimum delay', () => {
    expect(nextCheckDelay(ninetyDays, T0 + 60 * DAY - 2 * HOUR, zero)).toBe(2 * HOUR);
    expect(nextCheckDelay(ninetyDays, T0 + 60 * DAY - 1000, zero)).toBe(DEFAULT_RENEWAL_POLICY.minDelayMs);
    // Already due (e.g. the CA keeps failing): the check cannot become a tight loop.
    expect(nextCheckDelay(ninetyDays, T0 + 80 * DAY, almostOne)).toBe(DEFAULT_RENEWAL_POLICY.minDelayMs);
  });

  it('never schedules beyond what setTimeout can hold, whatever the policy', () => {
    const long = { notBefore: new Date(T0), notAfter: new Date(T0 + 5 * 365 * DAY) };
    expect(nextCheckDelay(long, T0, almostOne, { maxCheckIntervalMs: 365 * DAY })).toBe(MAX_TIMER_MS);
  });

  it('backs off exponentially from 5 min, doubling, capped at 6 h', () => {
    const mid = (): number => 0.5; // no jitter
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 20].map((n) => backoffDelay(n, mid) / 60_000)).toEqual([5, 10, 20, 40, 80, 160, 320, 360, 360, 360]);
    expect(backoffDelay(0, mid)).toBe(5 * 60_000);
    expect(backoffDelay(10_000, mid)).toBe(6 * HOUR);
  });

  it('jitters retries by +/- 20 % and keeps them above the minimum delay', () => {
    expect(backoffDelay(1, zero)).toBe(4 * 60_000);
    expect(backoffDelay(1, almostOne)).toBeCloseTo(6 * 60_000, -2);
    expect(backoffDelay(30, almostOne)).toBeLessThanOrEqual(6 * HOUR * 1.2);
    expect(backoffDelay(1, zero, { backoffBaseMs: 10, minDelayMs: 1000 })).toBe(1000);
  });
});

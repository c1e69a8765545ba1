/**
 * Everything the running server reports about itself, in one vocabulary: the broker core's events
 * (`BrokerObserver`), the listeners' (`ListenerEvents`), reloads and certificates. The metrics implement it;
 * tests add their own observer beside them with `observeBoth`.
 */
import type { BrokerObserver } from '../broker/context.js';
import type { ListenerEvents } from '../broker/listeners.js';
import type { CertificateOrigin } from '../tls/source.js';

/** What the server reloads without a restart. */
export const RELOAD_KINDS = ['passwd', 'acl', 'certificate', 'config'] as const;
export type ReloadKind = (typeof RELOAD_KINDS)[number];



export interface ReloadEvents {
  reloaded?(what: ReloadKind): void;
  reloadFailed?(what: ReloadKind): void;
}

export interface CertificateEvents {
  certificateServed?(lineage: string, notAfter: Date, origin: CertificateOrigin): void;
  renewalSucceeded?(): void;
  renewalFailed?(): void;
}

export interface ListenerLifecycle {
  listenerStarted?(listener: string): void;
}

export type ServerObserver = BrokerObserver & ListenerEvents & ReloadEvents & CertificateEvents & ListenerLifecycle;

/** An observer that tells `first` and then `second` of every event either of them listens to. */
export function observeBoth(first: ServerObserver, second: ServerObserver): ServerObserver {
  const both: Record<string, (...args: unknown[]) => void> = {};
  const names = new Set<string>();
  for (const o of [first, second]) {
    for (let p: object | null = o; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
      for (const name of Object.getOwnPropertyNames(p)) if (name !== 'constructor') names.add(name);
    }
  }
  for (const name of names) {
    const a = (first as Record<string, unknown>)[name];
    const b = (second as Record<string, unknown>)[name];
    if (typeof a !== 'function' && typeof b !== 'function') continue;
    both[name] = (...args: unknown[]) => {
      if (typeof a === 'function') (a as (...x: unknown[]) => void).apply(first, args);
      if (typeof b === 'function') (b as (...x: unknown[]) => void).apply(second, args);
    };
  }
  return both as ServerObserver;
}

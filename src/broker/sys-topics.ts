/**
 * mosquitto's `$SYS/broker/...` topics, which dashboards and Home Assistant sensors read: version, uptime,
 * clients, messages and bytes with their 1/5/15-minute load averages, retained messages and subscriptions,
 * published as retained messages every `sys_interval` seconds (only those whose value changed). Who may
 * read them is the ACL's to say, as in mosquitto (`#` does not match `$SYS`, `topic read $SYS/#` does).
 */
import type { Message } from './message.js';
import type { BrokerStats } from './stats.js';

export interface SysSource {
  readonly stats: BrokerStats;
  readonly connectedClients: number;
  /** Sessions held, connected or not. */
  readonly sessionCount: number;
  readonly subscriptionCount: number;
  countRetained(): number;
  publish(message: Message): void;
}

/** An exponentially decaying per-minute rate, as mosquitto's load figures. */
class Load {
  value = 0;
  constructor(private readonly windowSeconds: number) {}
  update(perMinute: number, interval: number): void {
    const keep = Math.exp(-interval / this.windowSeconds);
    this.value = perMinute + keep * (this.value - perMinute);
  }
}

const WINDOWS = [
  ['1min', 60],
  ['5min', 300],
  ['15min', 900],
] as const;
/** The load figures (`$SYS/broker/load/NAME/1min` ...) and the counter each follows. */
const LOADS = [
  ['messages/received', 'messagesReceived'],
  ['messages/sent', 'messagesSent'],
  ['bytes/received', 'bytesReceived'],
  ['bytes/sent', 'bytesSent'],
  ['connections', 'connections'],
] as const;
type Counter = (typeof LOADS)[number][1];

export class SysTopics {
  private readonly last = new Map<string, string>();
  private readonly loads = new Map<string, Load>();
  private previous: Record<Counter, number> = { messagesReceived: 0, messagesSent: 0, bytesReceived: 0, bytesSent: 0, connections: 0 };
  private timer: NodeJS.Timeout | undefined;
  private connectionsTotal = 0;

  constructor(
    private readonly source: SysSource,
    private readonly version: string,
  ) {
    for (const [name] of LOADS) for (const [window, seconds] of WINDOWS) this.loads.set(`${name}/${window}`, new Load(seconds));
  }

  /** A client connected (for the connection load). */
  connected(): void {
    this.connectionsTotal += 1;
  }

  private intervalSeconds = 0;

  /** Publish now and then every `intervalSeconds` (0: never). */
  start(intervalSeconds: number): void {
    this.intervalSeconds = intervalSeconds;
    if (intervalSeconds <= 0) return;
    this.set('$SYS/broker/version', `mqtt-acme-broker version ${this.version}`);
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Publish every figure whose value changed since the last interval. */
  tick(): void {
    const s = this.source;
    const stats = s.stats;
    const connected = s.connectedClients;
    stats.maxConnected = Math.max(stats.maxConnected, connected);
    this.set('$SYS/broker/uptime', `${Math.floor((Date.now() - stats.startedAt) / 1000)} seconds`);
    this.set('$SYS/broker/clients/connected', connected);
    this.set('$SYS/broker/clients/active', connected);
    this.set('$SYS/broker/clients/total', Math.max(s.sessionCount, connected));
    this.set('$SYS/broker/clients/disconnected', Math.max(0, s.sessionCount - connected));
    this.set('$SYS/broker/clients/inactive', Math.max(0, s.sessionCount - connected));
    this.set('$SYS/broker/clients/maximum', stats.maxConnected);
    this.set('$SYS/broker/messages/received', stats.messagesReceived);
    this.set('$SYS/broker/messages/sent', stats.messagesSent);
    this.set('$SYS/broker/publish/messages/received', stats.messagesReceived);
    this.set('$SYS/broker/publish/messages/sent', stats.messagesSent);
    this.set('$SYS/broker/bytes/received', stats.bytesReceived);
    this.set('$SYS/broker/bytes/sent', stats.bytesSent);
    this.set('$SYS/broker/retained messages/count', s.countRetained());
    this.set('$SYS/broker/subscriptions/count', s.subscriptionCount);
    const now: Record<Counter, number> = {
      messagesReceived: stats.messagesReceived,
      messagesSent: stats.messagesSent,
      bytesReceived: stats.bytesReceived,
      bytesSent: stats.bytesSent,
      connections: this.connectionsTotal,
    };
    const perMinute = 60 / this.intervalSeconds;
    for (const [name, field] of LOADS) {
      const delta = now[field] - this.previous[field];
      for (const [window] of WINDOWS) {
        const load = this.loads.get(`${name}/${window}`)!;
        load.update(delta * perMinute, this.intervalSeconds);
        this.set(`$SYS/broker/load/${name}/${window}`, load.value.toFixed(2));
      }
    }
    this.previous = now;
  }

  private set(topic: string, value: string | number): void {
    const text = String(value);
    if (this.last.get(topic) === text) return;
    this.last.set(topic, text);
    this.source.publish({ topic, payload: Buffer.from(text), qos: 0, retain: true });
  }
}

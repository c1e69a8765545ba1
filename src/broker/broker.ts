/**
 * Aedes with our hooks: authentication against the passwd snapshot, mosquitto-style ACLs on publish,
 * subscribe and delivery, mosquitto's limits, and one log line per refused connection.
 */
// Before anything that loads mqtt-packet (see quiet-debug.ts).
import './quiet-debug.js';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type ConnectPacket,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { AccessPolicy } from '../auth/policy.js';
import type { ClientAcl } from '../auth/acl.js';
import type { BrokerPersistence } from './persistence.js';
import { leanParserBuffer, limitReadBatch } from './read-batch.js';
import { leanDeliver0 } from './deliver.js';
import { limitPacketSize } from './packet-limit.js';
import { createMessageEmitter } from './message-emitter.js';

/** Why a connection was refused; also the label values of the refused-connections metric. */
export type RefusalReason =
  | 'anonymous_refused'
  | 'bad_credentials'
  | 'no_password_file'
  | 'identifier_rejected'
  | 'keepalive_too_long';

/** What the broker reports to metrics; every method is called on the hot path, so keep them cheap. */
export interface BrokerObserver {
  clientConnected?(listener: string): void;
  clientDisconnected?(): void;
  connectionRefused?(reason: RefusalReason): void;
  authFailed?(): void;
  messageIn?(bytes: number): void;
  messageOut?(bytes: number): void;
  publishDenied?(): void;
  subscribeDenied?(): void;
}

interface ClientState {
  listener: string;
  remoteAddress: string | undefined;
  username: string | undefined;
  /** CONNACK code decided in preConnect, sent from authenticate. */
  refuse?: { code: 2; reason: RefusalReason; detail: string };
  acl: ClientAcl | undefined;
  aclGeneration: number;
  authenticated: boolean;
}

const kState = Symbol('mqtt-acme-broker.client');
const kDropped = Symbol('mqtt-acme-broker.dropped');
type StatefulClient = Client & { [kState]?: ClientState };
type DroppablePacket = PublishPacket & { [kDropped]?: true };

const CONNACK_IDENTIFIER_REJECTED = 2;
/** mosquitto answers every v3 authentication failure with "not authorised" (5); clients show that text. */
const CONNACK_NOT_AUTHORIZED = 5;

export interface BrokerDeps {
  config: Config;
  logger: Logger;
  policy: AccessPolicy;
  persistence: BrokerPersistence;
  observer?: BrokerObserver;
}

export class Broker {
  private constructor(
    readonly aedes: Aedes,
    private readonly deps: BrokerDeps,
  ) {}

  static async create(deps: BrokerDeps): Promise<Broker> {
    const { config } = deps;
    const aedes = new Aedes({
      persistence: deps.persistence.aedesPersistence,
      mq: createMessageEmitter(100),
      // A subscriber that stops reading is disconnected after this long instead of holding memory forever.
      drainTimeout: 60_000,
      // Applies to MQTT 3.1 clients only (3.1.1 ids may be longer), as in mosquitto.
      maxClientsIdLength: 23,
    });
    const broker = new Broker(aedes, deps);
    broker.#installHooks();
    await aedes.listen();
    deps.logger.info(
      { persistence: deps.persistence.kind, allowAnonymous: config.allowAnonymous, users: deps.policy.userCount },
      'broker ready',
    );
    return broker;
  }

  get connectedClients(): number {
    return this.aedes.connectedClients;
  }

  /** Hand a new connection (TLS socket, TCP socket or websocket stream) to the broker. */
  handle(conn: Duplex, listener: string, remoteAddress: string | undefined, req?: IncomingMessage): void {
    const client = this.aedes.handle(conn, req) as StatefulClient;
    client[kState] = {
      listener,
      // IPv4 clients of a dual-stack listener show up as ::ffff:a.b.c.d; log the address people know.
      remoteAddress: remoteAddress?.startsWith('::ffff:') ? remoteAddress.slice(7) : remoteAddress,
      username: undefined,
      acl: undefined,
      aclGeneration: -1,
      authenticated: false,
    };
    limitPacketSize(client, maxPacketSize(this.deps.config.messageSizeLimit));
    limitReadBatch(client, conn);
    leanParserBuffer(client);
    leanDeliver0(client);
  }

  /** Retained messages held (a full scan: for /metrics scrapes, not for the hot path). */
  async countRetained(): Promise<number> {
    const persistence = (this.aedes as unknown as { persistence: { createRetainedStream(pattern: string): AsyncIterable<unknown> } }).persistence;
    let n = 0;
    for await (const _ of persistence.createRetainedStream('#')) n += 1;
    return n;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
  }

  #clientAcl(client: StatefulClient): ClientAcl | undefined {
    const state = client[kState];
    if (!state) return undefined;
    const generation = this.deps.policy.aclGeneration;
    if (state.aclGeneration !== generation) {
      state.acl = this.deps.policy.clientAcl(state.username, client.id);
      state.aclGeneration = generation;
    }
    return state.acl;
  }

  #installHooks(): void {
    const { aedes, deps } = this;
    const { config, logger, policy } = deps;
    const observer = deps.observer ?? {};
    const log = logger;

    aedes.preConnect = (client: StatefulClient, packet: ConnectPacket, callback) => {
      const state = client[kState];
      if (state) {
        if (packet.clientId === '' && packet.clean === false) {
          state.refuse = {
            code: CONNACK_IDENTIFIER_REJECTED,
            reason: 'identifier_rejected',
            detail: 'empty client id with clean session off (MQTT-3.1.3-8)',
          };
        } else if (config.maxKeepalive > 0 && (packet.keepalive ?? 0) > config.maxKeepalive) {
          state.refuse = {
            code: CONNACK_IDENTIFIER_REJECTED,
            reason: 'keepalive_too_long',
            detail: `keepalive ${packet.keepalive} s is above max_keepalive ${config.maxKeepalive}`,
          };
        }
      }
      callback(null, true);
    };

    aedes.authenticate = (client: StatefulClient, username, password, done) => {
      const state = client[kState];
      const refuse = (code: number, reason: RefusalReason, detail: string): void => {
        log.warn(
          { clientId: client.id, username, remoteAddress: state?.remoteAddress, listener: state?.listener, reason },
          `connection refused: ${detail}`,
        );
        observer.connectionRefused?.(reason);
        const err = new Error(detail) as AuthenticateError;
        err.returnCode = code as AuthenticateError['returnCode'];
        done(err, false);
      };
      if (state?.refuse) {
        refuse(state.refuse.code, state.refuse.reason, state.refuse.detail);
        return;
      }
      policy.authenticate(username, password).then(
        (result) => {
          if (result.ok) {
            if (state) {
              state.username = result.username;
              state.authenticated = true;
            }
            done(null, true);
            return;
          }
          observer.authFailed?.();
          const detail =
            result.reason === 'anonymous_refused'
              ? 'anonymous clients are not allowed (allow_anonymous false)'
              : result.reason === 'no_password_file'
                ? 'a username was given but no password_file is configured'
                : 'wrong username or password';
          refuse(CONNACK_NOT_AUTHORIZED, result.reason, detail);
        },
        (err: unknown) => {
          log.error({ clientId: client.id, err }, 'authentication failed unexpectedly');
          refuse(CONNACK_NOT_AUTHORIZED, 'bad_credentials', 'authentication error');
        },
      );
    };

    aedes.authorizePublish = (client: StatefulClient | null, packet: DroppablePacket, callback) => {
      if (client === null) {
        callback(null); // a stored will of a client that is gone: it was authorized when stored
        return;
      }
      const topic = packet.topic;
      let dropReason: string | undefined;
      if (topic.charCodeAt(0) === 36 /* $ */ && topic.startsWith('$SYS')) {
        dropReason = 'clients may not publish to $SYS';
      } else if (packet.retain && !config.retainAvailable) {
        // mosquitto disconnects a client that sends a retained message when retain_available is false.
        callback(new Error('retained messages are not available on this broker (retain_available false)'));
        return;
      } else if (config.messageSizeLimit > 0 && packet.payload.length > config.messageSizeLimit) {
        dropReason = `payload of ${packet.payload.length} bytes is above message_size_limit ${config.messageSizeLimit}`;
      } else {
        const acl = this.#clientAcl(client);
        if (acl !== undefined && !acl.canPublish(topic)) dropReason = 'denied by the ACL';
      }
      if (dropReason !== undefined) {
        // Like mosquitto: the message is dropped, the QoS flow completes, the client stays connected.
        packet[kDropped] = true;
        packet.retain = false;
        observer.publishDenied?.();
        log.debug({ clientId: client.id, username: client[kState]?.username, topic }, `PUBLISH dropped: ${dropReason}`);
      } else {
        observer.messageIn?.(packet.payload.length);
      }
      callback(null);
    };

    // A dropped PUBLISH still passes through aedes' QoS handling (PUBACK/PUBREC); it just goes nowhere.
    const publish = aedes.publish.bind(aedes);
    aedes.publish = ((packet: DroppablePacket, client: unknown, done?: (error?: Error) => void) => {
      if (packet[kDropped] === true) {
        const callback = typeof client === 'function' ? (client as (error?: Error) => void) : done;
        callback?.();
        return;
      }
      (publish as (p: PublishPacket, c: unknown, d?: (error?: Error) => void) => void)(packet, client, done);
    }) as Aedes['publish'];

    aedes.authorizeSubscribe = (client: StatefulClient, subscription: Subscription, callback) => {
      const acl = this.#clientAcl(client);
      if (acl !== undefined && !acl.canSubscribe(subscription.topic)) {
        observer.subscribeDenied?.();
        log.debug({ clientId: client.id, username: client[kState]?.username, topic: subscription.topic }, 'SUBSCRIBE denied by the ACL');
        callback(null, null); // 0x80 in the SUBACK
        return;
      }
      callback(null, subscription);
    };

    aedes.authorizeForward = (client: StatefulClient, packet: AedesPublishPacket) => {
      const acl = this.#clientAcl(client);
      if (acl !== undefined && !acl.canReceive(packet.topic)) return null;
      observer.messageOut?.(packet.payload.length);
      return packet;
    };

    aedes.on('client', (client: StatefulClient) => {
      const state = client[kState];
      observer.clientConnected?.(state?.listener ?? 'unknown');
      log.info(
        { clientId: client.id, username: state?.username, remoteAddress: state?.remoteAddress, listener: state?.listener, clean: client.clean },
        'client connected',
      );
    });
    aedes.on('clientDisconnect', (client: StatefulClient) => {
      observer.clientDisconnected?.();
      log.info({ clientId: client.id, username: client[kState]?.username }, 'client disconnected');
    });
    aedes.on('clientError', (client: StatefulClient, err: Error) => {
      const state = client[kState];
      log.warn(
        { clientId: client.id, username: state?.username, remoteAddress: state?.remoteAddress, error: err.message },
        'client connection closed on error',
      );
    });
    aedes.on('connectionError', (client: StatefulClient, err: Error) => {
      const state = client[kState];
      log.warn({ remoteAddress: state?.remoteAddress, listener: state?.listener, error: err.message }, 'connection closed before CONNECT completed');
    });
    aedes.on('keepaliveTimeout', (client: StatefulClient) => {
      log.info({ clientId: client.id, username: client[kState]?.username }, 'client keepalive timed out');
    });
  }
}

/**
 * The largest packet a connected client may send: a PUBLISH whose payload is at message_size_limit plus the
 * longest topic and header; anything longer cannot be a message we would accept, so the connection closes
 * before its bytes are buffered. Without a limit, MQTT's own maximum (256 MiB).
 */
export function maxPacketSize(messageSizeLimit: number): number {
  const MQTT_MAX = 268_435_455;
  if (messageSizeLimit <= 0) return MQTT_MAX;
  return Math.min(MQTT_MAX, messageSizeLimit + 2 + 65_535 + 2);
}

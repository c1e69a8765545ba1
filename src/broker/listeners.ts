/**
 * The network side: one server per configured listener (MQTT over TLS or TCP, MQTT over websockets with
 * or without TLS), each handing its connections to the broker.
 */
import { createServer as createTcpServer, Socket as NetSocket, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { WebSocketServer } from 'ws';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { TlsContext } from '../tls/context.js';
import { HandshakeFailureLog, type TlsFailureReason } from '../tls/handshake-failures.js';
import type { Broker } from './broker.js';

export interface RunningListener {
  readonly name: string;
  readonly config: ListenerConfig;
  readonly port: number;
  readonly tls: boolean;
  /** Stop accepting connections now; resolves once every connection of this listener has closed. */
  close(): Promise<void>;
}

export interface ListenerEvents {
  /**
   * A TLS handshake failed (scanners, clients that do not trust the certificate, old protocol versions);
   * `reason` is a short stable label (see TLS_FAILURE_REASONS), never an address.
   */
  tlsError?(listener: string, reason: TlsFailureReason): void;
  /** A TLS handshake succeeded; `protocol` as `TLSSocket.getProtocol()` names it ('TLSv1' ... 'TLSv1.3'). */
  tlsHandshake?(listener: string, protocol: string): void;
  /** A connection was refused because max_connections was reached. */
  connectionDropped?(listener: string): void;
}

/** A short, stable listener name for logs and metrics: `mqtts:8883`, `ws:9001`, ... */
export function listenerName(config: ListenerConfig, tls: boolean, port = config.port): string {
  const scheme = config.protocol === 'websockets' ? (tls ? 'wss' : 'ws') : tls ? 'mqtts' : 'mqtt';
  return `${scheme}:${port}`;
}

export interface ListenerLimits {
  /** Connections per listener (mosquitto's max_connections); -1 = unlimited. */
  maxConnections: number;
  /** Seconds a TLS handshake may take (connect_timeout); the broker applies the same bound to CONNECT. */
  connectTimeout: number;
}

export async function startListener(
  config: ListenerConfig,
  broker: Broker,
  tlsContext: TlsContext | undefined,
  limits: ListenerLimits,
  logger: Logger,
  events: ListenerEvents = {},
): Promise<RunningListener> {
  const { maxConnections } = limits;
  const handshakeTimeout = limits.connectTimeout > 0 ? limits.connectTimeout * 1000 : 120_000;
  const tls = tlsContext !== undefined;
  let name = listenerName(config, tls);
  // The listener's TLS policy (tls_version, ciphers) lives in its context, validated when that was made.
  const policy = tlsContext?.policy;
  let server: NetServer | TlsServer | HttpServer;
  let wss: WebSocketServer | undefined;

  if (config.protocol === 'websockets') {
    // Loaded only for websocket listeners.
    const { WebSocketServer, createWebSocketStream } = await import('ws');
    const http = tlsContext ? createHttpsServer({ ...tlsContext.serverOptions(), noDelay: true, handshakeTimeout }) : createHttpServer({ noDelay: true });
    wss = new WebSocketServer({
      server: http,
      perMessageDeflate: false,
      // mqtt.js and paho ask for 'mqtt' (3.1.1) or 'mqttv3.1'.
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    });
    wss.on('connection', (ws, req) => {
      const stream = createWebSocketStream(ws);
      broker.handle(stream, name, req.socket.remoteAddress);
    });
    wss.on('error', (err) => logger.warn({ listener: name, error: err.message }, 'websocket server error'));
    server = http;
  } else if (tlsContext) {
    server = createTlsServer({ ...tlsContext.serverOptions(), noDelay: true, handshakeTimeout }, (socket: TLSSocket) => {
      broker.handle(socket, name, socket.remoteAddress);
    });
  } else {
    server = createTcpServer({ noDelay: true }, (socket: Socket) => {
      broker.handle(socket, name, socket.remoteAddress);
    });
  }

  if (tlsContext) {
    tlsContext.attach(server as TlsServer);
    const failures = new HandshakeFailureLog(logger);
    // A client that hangs up mid-handshake is reported after its socket is gone, when the TLS socket no
    // longer knows its address: note it at accept time (one getpeername per connection).
    const peers = new WeakMap<Socket, string>();
    server.on('connection', (raw: Socket) => {
      const address = raw.remoteAddress;
      if (address !== undefined) peers.set(raw, address);
    });
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      const raw = tcpSocketOf(socket);
      const address = socket.remoteAddress ?? (raw === undefined ? undefined : peers.get(raw));
      const reason = failures.report(name, address, err, raw?.bytesRead);
      events.tlsError?.(name, reason);
      // Node reports a handshake timeout here without closing the socket: a silent connection would stay.
      socket.destroy();
    });
    const onHandshake = events.tlsHandshake?.bind(events);
    if (onHandshake) {
      server.on('secureConnection', (socket: TLSSocket) => onHandshake(name, socket.getProtocol() ?? 'unknown'));
    }
  }
  if (maxConnections >= 0) {
    server.maxConnections = maxConnections;
    server.on('drop', (data?: { remoteAddress?: string }) => {
      events.connectionDropped?.(name);
      logger.warn({ listener: name, remoteAddress: data?.remoteAddress, maxConnections }, 'connection refused: max_connections reached');
    });
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const hint = err.code === 'EADDRINUSE' ? ' (another process uses this port)' : err.code === 'EACCES' ? ' (ports below 1024 need privileges)' : '';
      reject(new Error(`cannot listen on ${config.host ?? '*'}:${config.port} for ${name}: ${err.message}${hint}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ port: config.port, host: config.host }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ listener: name, error: err.message }, 'listener error'));
  const port = (server.address() as AddressInfo).port;
  name = listenerName(config, tls, port);
  // The TLS policy as configured (the full cipher string Node gets is long and mostly its default).
  const tlsFields = policy
    ? { minTlsVersion: policy.minVersion, ...(config.ciphers === undefined ? {} : { ciphers: config.ciphers }), ...(config.ciphersTls13 === undefined ? {} : { ciphersTls13: config.ciphersTls13 }), ...(policy.legacy ? { opensslSecurityLevel: 0 } : {}) }
    : {};
  logger.info({ listener: name, host: config.host ?? '*', port, protocol: config.protocol, tls, ...tlsFields }, 'listening');
  for (const warning of policy?.warnings ?? []) logger.warn({ listener: name }, warning);
  if (policy?.legacy === true) {
    logger.warn(
      { listener: name, minTlsVersion: policy.minVersion },
      `listener ${name} accepts ${policy.minVersion === 'TLSv1' ? 'TLS 1.0 and 1.1' : 'TLS 1.1'}, deprecated by RFC 8996, at OpenSSL security level 0 (needed for these versions): keep it to old clients that can do no better (cameras), on a port of its own`,
    );
  }

  return {
    name,
    config,
    port,
    tls,
    close: () =>
      // Stops accepting at once; resolves when the last connection is gone (the broker closes them).
      new Promise<void>((resolve) => {
        wss?.close();
        server.close(() => resolve());
      }),
  };
}

/** The TCP socket under a server-side TLS socket (Node keeps it as `_parent`), if there is one. */
function tcpSocketOf(socket: TLSSocket): Socket | undefined {
  const parent = (socket as unknown as { _parent?: unknown })._parent;
  return parent instanceof NetSocket ? parent : undefined;
}

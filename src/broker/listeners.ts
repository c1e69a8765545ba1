/**
 * The network side: one server per configured listener (MQTT over TLS or TCP, MQTT over websockets with
 * or without TLS), each handing its connections to the broker.
 */
import { createServer as createTcpServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { WebSocketServer } from 'ws';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { TlsContext } from '../tls/context.js';
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
  /** A TLS handshake failed (scanners, clients that do not trust the certificate). */
  tlsError?(listener: string): void;
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
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      events.tlsError?.(name);
      logger.debug({ listener: name, remoteAddress: socket.remoteAddress, error: err.message }, 'TLS handshake failed');
      // Node reports a handshake timeout here without closing the socket: a silent connection would stay.
      socket.destroy();
    });
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
  logger.info({ listener: name, host: config.host ?? '*', port, protocol: config.protocol, tls }, 'listening');

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

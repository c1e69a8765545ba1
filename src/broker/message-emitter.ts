/**
 * The broker's internal message bus: mqemitter (what Aedes uses by default), with its release chain made
 * safe for deep backlogs.
 *
 * mqemitter runs at most `concurrency` messages at once and queues the rest. When a message has no
 * subscriber, its completion calls the next queued message synchronously, and that one the next: a
 * subscriber that stalled under a flood (so the queue grew to hundreds of thousands of messages) and then
 * disconnected leaves a queue whose release recursed once per message until "Maximum call stack size
 * exceeded" killed vanilla Aedes 1.2.0. Here the recursion is cut every MAX_SYNC_DEPTH steps by continuing on
 * the next turn of the event loop. Only messages that matched no subscriber are ever continued that way
 * (a matched delivery completes asynchronously), so no delivery order changes.
 */
import mqemitter from 'mqemitter';

const MAX_SYNC_DEPTH = 256;

interface MQEmitterInternals {
  _do(message: unknown, callback: (err?: Error) => void): unknown;
}

export function createMessageEmitter(concurrency: number): ReturnType<typeof mqemitter> {
  // matchEmptyLevels: [MQTT-4.7.1-3], as Aedes configures its own.
  const mq = mqemitter({ concurrency, matchEmptyLevels: true });
  const internals = mq as unknown as MQEmitterInternals;
  const run = internals._do;
  let depth = 0;
  internals._do = function guardedDo(this: MQEmitterInternals, message, callback) {
    if (depth >= MAX_SYNC_DEPTH) {
      setImmediate(() => run.call(this, message, callback));
      return this;
    }
    depth += 1;
    try {
      return run.call(this, message, callback);
    } finally {
      depth -= 1;
    }
  };
  return mq;
}

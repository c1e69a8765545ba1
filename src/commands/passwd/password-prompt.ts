/**
 * Asking for a password twice, as mosquitto_passwd does ("Password: ", "Reenter password: "). On a terminal
 * stdin is put in raw mode, so nothing is echoed, and this is the line editor: Enter ends the line,
 * Backspace/DEL removes the last character, Ctrl-C aborts, Ctrl-D on an empty line is end of input. The
 * terminal mode is restored however the prompt ends. Otherwise (a pipe) lines are read as they come.
 */
import { StringDecoder } from 'node:string_decoder';
import { PasswdFailure } from './failure.js';

export interface PromptIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  /** stdin is a terminal: read in raw mode, without echo. */
  isTTY: boolean;
}

const INTERRUPTED = Symbol('interrupted');

/** Reads lines from stdin; on a terminal in raw mode, doing the editing the terminal would have done. */
class LineInput {
  readonly #stream: NodeJS.ReadableStream;
  readonly #tty: boolean;
  readonly #decoder = new StringDecoder('utf8');
  #buf = '';
  #line = '';
  #skipLf = false;
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer | string): void => {
    this.#buf += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    this.#notify();
  };
  readonly #onEnd = (): void => {
    this.#buf += this.#decoder.end();
    this.#ended = true;
    this.#notify();
  };

  constructor(stream: NodeJS.ReadableStream, tty: boolean) {
    this.#stream = stream;
    this.#tty = tty;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onEnd);
    stream.resume();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  close(): void {
    this.#stream.off('data', this.#onData);
    this.#stream.off('end', this.#onEnd);
    this.#stream.off('error', this.#onEnd);
    this.#stream.pause();
  }

  /** The next line without its end, null at end of input, INTERRUPTED on Ctrl-C (terminal). */
  async readLine(): Promise<string | null | typeof INTERRUPTED> {
    for (;;) {
      if (this.#tty) {
        const r = this.#scanTty();
        if (r !== undefined) return r;
      } else {
        const nl = this.#buf.indexOf('\n');
        if (nl !== -1) {
          const line = this.#buf.slice(0, nl).replace(/\r$/, '');
          this.#buf = this.#buf.slice(nl + 1);
          return line;
        }
      }
      if (this.#ended) {
        const rest = this.#tty ? this.#line : this.#buf;
        this.#buf = '';
        this.#line = '';
        return rest === '' ? null : rest.replace(/\r$/, '');
      }
      await new Promise<void>((r) => {
        this.#wake = r;
      });
    }
  }

  /** Consume typed characters up to the end of a line; undefined when the line is not finished yet. */
  #scanTty(): string | null | typeof INTERRUPTED | undefined {
    let i = 0;
    const buf = this.#buf;
    try {
      for (const ch of buf) {
        i += ch.length;
        if (this.#skipLf) {
          this.#skipLf = false;
          if (ch === '\n') continue;
        }
        if (ch === '\r' || ch === '\n') {
          this.#skipLf = ch === '\r';
          const line = this.#line;
          this.#line = '';
          return line;
        }
        if (ch === '\u0003') return INTERRUPTED;
        if (ch === '\u0004') {
          if (this.#line === '') return null;
          continue;
        }
        if (ch === '\u007f' || ch === '\b') {
          this.#line = Array.from(this.#line).slice(0, -1).join('');
          continue;
        }
        this.#line += ch;
      }
      return undefined;
    } finally {
      this.#buf = buf.slice(i);
    }
  }
}

/** Switch a TTY stream's raw mode; false when the stream has none (then input is read as lines). */
function setRawMode(stdin: NodeJS.ReadableStream, on: boolean): boolean {
  const s = stdin as NodeJS.ReadableStream & { setRawMode?: (mode: boolean) => unknown };
  if (typeof s.setRawMode !== 'function') return false;
  s.setRawMode(on);
  return true;
}

/**
 * The password typed twice. Throws PasswdFailure: 1 "Empty password." for an empty line or end of input,
 * 1 with no message on Ctrl-C, 2 "Passwords do not match.".
 */
export async function promptPassword(io: PromptIo): Promise<string> {
  const raw = io.isTTY && setRawMode(io.stdin, true);
  const input = new LineInput(io.stdin, raw);
  const ask = async (prompt: string): Promise<string> => {
    io.stdout.write(prompt);
    const line = await input.readLine();
    if (line === INTERRUPTED) throw new PasswdFailure(1, '');
    if (line === null || line === '') throw new PasswdFailure(1, 'Error: Empty password.');
    io.stdout.write('\n');
    return line;
  };
  try {
    const first = await ask('Password: ');
    const second = await ask('Reenter password: ');
    if (first !== second) throw new PasswdFailure(2, 'Error: Passwords do not match.');
    return first;
  } finally {
    input.close();
    if (raw) setRawMode(io.stdin, false);
  }
}

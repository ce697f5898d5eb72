/**
 * tsxend's log (xend's xend.log): every line stamped with the time, appended to a file (by
 * default tsxend.log in the state directory) and echoed, and read back by `xm log`.
 */
import { appendFileSync, closeSync, openSync, readSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";

/** The log file of a state directory. */
export function defaultLogFile(stateDir: string): string {
  return join(stateDir, "tsxend.log");
}

/** A file grown past this at start is kept as FILE.1 and a new one begun (logrotate's job once). */
const ROTATE_BYTES = 8 << 20;
/** xm log shows at most the last this many bytes. */
export const LOG_TAIL_BYTES = 256 << 10;

/** "2005-03-15 12:00:00.123" in UTC, as a log line starts. */
export function stamp(at: Date = new Date()): string {
  return at.toISOString().replace("T", " ").replace("Z", "");
}

export class DaemonLog {
  /** Why the file could not be written, said once on the echo; null while it can be. */
  private failed: string | null = null;

  /**
   * `file` null: no file (a daemon inside a test). `echo` gets each stamped line (stderr for
   * tsxen daemon).
   */
  constructor(
    readonly file: string | null,
    private readonly echo: (line: string) => void,
  ) {
    if (file === null) return;
    try {
      if (statSync(file).size > ROTATE_BYTES) renameSync(file, `${file}.1`);
    } catch {
      // No file yet.
    }
  }

  /** One message, one line or more, each stamped. */
  write(message: string): void {
    const t = stamp();
    const text = message
      .replace(/\n$/, "")
      .split("\n")
      .map((l) => `${t} ${l}\n`)
      .join("");
    this.echo(text);
    if (this.file === null) return;
    try {
      appendFileSync(this.file, text, { mode: 0o600 });
      this.failed = null;
    } catch (e) {
      const why = (e as Error).message;
      if (this.failed !== why) this.echo(`${t} cannot write the log file ${this.file}: ${why}\n`);
      this.failed = why;
    }
  }

  /** The end of the file (at most LOG_TAIL_BYTES, from a line start), "" when there is none. */
  tail(): string {
    if (this.file === null) return "";
    let fd: number;
    try {
      fd = openSync(this.file, "r");
    } catch {
      return "";
    }
    try {
      const size = statSync(this.file).size;
      const from = Math.max(0, size - LOG_TAIL_BYTES);
      const buf = Buffer.alloc(size - from);
      const n = readSync(fd, buf, 0, buf.length, from);
      const text = buf.toString("utf8", 0, n);
      return from === 0 ? text : text.slice(text.indexOf("\n") + 1);
    } finally {
      closeSync(fd);
    }
  }
}

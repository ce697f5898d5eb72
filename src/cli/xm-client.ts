/**
 * The xm side of tsxend's API (docs/api.md): JSON requests, streamed progress for save and
 * restore, and the console over a WebSocket.
 */
import WebSocket from "ws";
import { DEFAULT_PORT, tsxendUrl } from "../daemon/port.js";
import { defaultStateDir, isLoopback, readTokenFile, tokenFile } from "../daemon/token.js";

export const DEFAULT_DAEMON = `http://127.0.0.1:${DEFAULT_PORT}`;

/** A failure to show the user as is (exit status 1). */
export class XmError extends Error {
  override name = "XmError";
}

export interface Connection {
  base: string;
  token?: string;
  /** Where the token came from (or why there is none), added to the daemon's 401 sentence. */
  tokenFrom: string;
}

/**
 * Where tsxend is and its token: --token, else $TSXEN_TOKEN, else (for a tsxend on this
 * machine) the token file in tsxend's state directory ($TSXEN_STATE_DIR or the default).
 */
export function connection(opts: { daemon?: string; token?: string }): Connection {
  let base: string;
  try {
    base = tsxendUrl(opts.daemon ?? process.env.TSXEN_DAEMON ?? DEFAULT_DAEMON);
  } catch (e) {
    throw new XmError(`--daemon: ${(e as Error).message}`);
  }
  if (opts.token) return { base, token: opts.token, tokenFrom: "xm sent the token given with --token" };
  if (process.env.TSXEN_TOKEN)
    return { base, token: process.env.TSXEN_TOKEN, tokenFrom: "xm sent the token in $TSXEN_TOKEN" };
  if (!isLoopback(new URL(base).hostname))
    return { base, tokenFrom: "xm sent no token: give it with --token or TSXEN_TOKEN" };
  const file = tokenFile(defaultStateDir());
  try {
    return { base, token: readTokenFile(file), tokenFrom: `xm sent the token in ${file}` };
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? `there is no ${file}` : (e as Error).message;
    return { base, tokenFrom: `xm sent no token: ${why}` };
  }
}

/** The daemon's refusal of a token, with what xm sent. */
function refused(c: Connection, status: number, error: string): string {
  return status === 401 ? `${error} (${c.tokenFrom})` : error;
}

function headers(c: Connection, json: boolean): Record<string, string> {
  const h: Record<string, string> = {};
  if (json) h["Content-Type"] = "application/json";
  if (c.token) h.Authorization = `Bearer ${c.token}`;
  return h;
}

async function send(c: Connection, method: string, path: string, body?: unknown): Promise<Response> {
  try {
    return await fetch(`${c.base}/api/v1${path}`, {
      method,
      headers: headers(c, body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    if (cause === "ECONNREFUSED") {
      throw new XmError(
        `cannot reach tsxend at ${c.base}: nothing is listening there (start it with \`tsxen daemon\`)`,
      );
    }
    throw new XmError(`cannot reach tsxend at ${c.base}: ${cause ?? (e as Error).message}`);
  }
}

/** A JSON request; the daemon's error message becomes an XmError. */
export async function request<T = Record<string, unknown>>(
  c: Connection,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await send(c, method, path, body);
  const text = await res.text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new XmError(`tsxend sent an answer that is not JSON (HTTP ${res.status})`);
  }
  if (!res.ok)
    throw new XmError(
      refused(c, res.status, String((value as { error?: unknown }).error ?? `HTTP ${res.status}`)),
    );
  return value as T;
}

/**
 * A long operation answered with NDJSON progress lines; `onProgress` sees each, the final
 * line is returned (or thrown when it carries an error).
 */
export async function streamed(
  c: Connection,
  path: string,
  body: unknown,
  onProgress: (phase: string, done: number, total: number) => void,
): Promise<Record<string, unknown>> {
  const res = await send(c, "POST", path, body);
  if (!res.ok) {
    const v = (await res.json().catch(() => ({}))) as { error?: string };
    throw new XmError(refused(c, res.status, v.error ?? `HTTP ${res.status}`));
  }
  let buf = "";
  let final: Record<string, unknown> | null = null;
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "") continue;
      const v = JSON.parse(line) as Record<string, unknown>;
      if (typeof v.progress === "string") onProgress(v.progress, Number(v.done), Number(v.total));
      else final = v;
    }
  }
  if (final === null) throw new XmError("tsxend stopped answering before the operation finished");
  if (typeof final.error === "string") throw new XmError(final.error);
  return final;
}

/** Ctrl-], as in xencons and telnet. */
const DETACH = 0x1d;

/**
 * Attaches the terminal to a domain's console until Ctrl-] or the domain goes away.
 * Resolves with how it ended.
 */
export function attachConsole(
  c: Connection,
  dom: string,
  opts: { history?: boolean } = {},
): Promise<"detached" | "closed"> {
  const url = `${c.base.replace(/^http/, "ws")}/api/v1/domains/${encodeURIComponent(dom)}/console${opts.history === false ? "?history=0" : ""}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: headers(c, false) });
    const stdin = process.stdin;
    const raw = stdin.isTTY === true;
    let done = false;
    let ended = false;
    const finish = (how: "detached" | "closed"): void => {
      if (done) return;
      done = true;
      stdin.off("data", onInput);
      stdin.off("end", onEnd);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      // A pipe or socket on stdin would keep the process alive; the console owned it.
      if (!raw) stdin.destroy();
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      resolve(how);
    };
    const onInput = (data: Buffer): void => {
      const at = data.indexOf(DETACH);
      const part = at < 0 ? data : data.subarray(0, at);
      if (part.length > 0 && ws.readyState === WebSocket.OPEN) ws.send(part);
      if (at >= 0) finish("detached");
    };
    // The end of stdin (a pipe or file that has no more) detaches, as Ctrl-] does; the close
    // handshake lets what tsxend sent before it (the history) arrive first.
    const onEnd = (): void => {
      ended = true;
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    };
    ws.on("unexpected-response", (_req, res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () =>
        reject(
          new XmError(
            refused(
              c,
              res.statusCode ?? 0,
              text.trim() || `cannot attach to the console (HTTP ${res.statusCode})`,
            ),
          ),
        ),
      );
    });
    ws.on("error", (e: Error & { code?: string }) => {
      if (done) return;
      reject(
        new XmError(
          e.code === "ECONNREFUSED"
            ? `cannot reach tsxend at ${c.base}: nothing is listening there`
            : `console: ${e.message}`,
        ),
      );
    });
    ws.on("open", () => {
      if (raw) stdin.setRawMode(true);
      stdin.on("data", onInput);
      stdin.on("end", onEnd);
      stdin.resume();
      if (process.stderr.isTTY) process.stderr.write(`[attached to ${dom}; Ctrl-] detaches]\r\n`);
    });
    ws.on("message", (data: Buffer) => void process.stdout.write(data));
    ws.on("close", (code, reason) => {
      if (!done && code !== 1000 && code !== 1005)
        process.stderr.write(`\r\n[${reason.toString() || "console closed"}]\r\n`);
      finish(ended ? "detached" : "closed");
    });
  });
}

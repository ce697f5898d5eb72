/**
 * What every request to tsxend passes before the API sees it, as Jupyter and similar local
 * servers check theirs. Any web page can make a browser send a request to 127.0.0.1:
 * - a cross-origin POST of Content-Type text/plain needs no CORS preflight: so the API takes
 *   JSON bodies only (and domain images as application/octet-stream), 415 otherwise;
 * - a page from another site carries its Origin: refused (403) unless it is one of our names;
 * - DNS rebinding makes the page same-origin under the attacker's name: the Host header names
 *   it, and only the names tsxend listens as are answered (403);
 * - and a token is required on loopback too (401), which no other page can know.
 * WebSocket upgrades (consoles) pass the same checks; a browser cannot set headers there, so
 * its token may come as ?token=.
 */
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { hostname, networkInterfaces } from "node:os";

export interface GuardOptions {
  /** The address tsxend listens on (--listen). */
  listen: string;
  token: string;
  /** Where the token is, for messages: its file, or null when it was given (--token, TSXEN_TOKEN). */
  tokenFile: string | null;
  /** More names clients may use for tsxend (--allow-host), "name" or "name:port". */
  allowHosts?: readonly string[];
}

/** Why a request is refused: its HTTP status and a sentence for a person. */
export interface Refusal {
  status: number;
  message: string;
}

/** What a request needs besides a good Host and Origin. */
export interface Need {
  /** The token (every API call and console; not the dashboard's own files). */
  token: boolean;
  /** The media type of a body (POST, PUT, PATCH): JSON unless said otherwise. */
  body?: "application/json" | "application/octet-stream";
  /** A WebSocket upgrade: the token may come in the URL (?token=). */
  upgrade?: boolean;
}

const WILDCARD = new Set(["0.0.0.0", "::", "[::]", ""]);
const WITH_BODY = new Set(["POST", "PUT", "PATCH"]);

/** "host:port" as a client names a server (lowercase, IPv6 in brackets, the scheme's port when absent). */
function hostPort(authority: string, scheme = "http"): string | null {
  try {
    const u = new URL(`${scheme}://${authority}`);
    if (u.username !== "" || u.password !== "" || u.pathname !== "/" || u.search !== "") return null;
    return `${u.hostname}:${u.port || (scheme === "https" ? "443" : "80")}`;
  } catch {
    return null;
  }
}

/**
 * An --allow-host entry: "name:port" is that port only; a bare "name" any port ("name:*"),
 * since behind a proxy the port the client used is the proxy's, and absent from Host.
 */
function allowedName(entry: string): string | null {
  if (/:\d+$/.test(entry) && !entry.endsWith("]")) return hostPort(entry);
  return hostPort(`${entry}:1`)?.replace(/:1$/, ":*") ?? null;
}

/** An address as it appears in a Host header (IPv6 bracketed). */
function asHostName(address: string): string {
  return address.includes(":") && !address.startsWith("[") ? `[${address}]` : address;
}

export class Guard {
  private allowed: string[] = [];
  private port = 0;

  constructor(private readonly o: GuardOptions) {
    for (const a of o.allowHosts ?? [])
      if (allowedName(a) === null)
        throw new Error(`--allow-host "${a}" is not a host name or name:port (an IPv6 address in brackets)`);
  }

  get token(): string {
    return this.o.token;
  }

  /** Called once listening: the names tsxend answers to are its listen address's, on port. */
  listening(port: number): void {
    this.port = port;
    const names = ["127.0.0.1", "localhost", "[::1]"];
    if (WILDCARD.has(this.o.listen)) {
      // Every address of this machine reaches a wildcard listener, and its name.
      names.push(hostname());
      for (const list of Object.values(networkInterfaces()))
        for (const a of list ?? []) names.push(asHostName(a.address));
    } else names.push(asHostName(this.o.listen));
    const set = new Set<string>();
    for (const n of names) set.add(hostPort(`${n}:${port}`) ?? "");
    for (const a of this.o.allowHosts ?? []) set.add(allowedName(a) ?? "");
    set.delete("");
    this.allowed = [...set];
  }

  /** The dashboard's address with the token, printed at start (a browser keeps the token). */
  dashboardUrl(): string {
    const l = this.o.listen;
    const host = l === "::" || l === "[::]" ? "[::1]" : WILDCARD.has(l) ? "127.0.0.1" : asHostName(l);
    return `http://${host}:${this.port}/?token=${encodeURIComponent(this.o.token)}`;
  }

  /** Why this request may not go on, or null when it may. */
  check(req: IncomingMessage, need: Need): Refusal | null {
    const names = this.allowed.join(", ");
    const host = req.headers.host;
    if (host === undefined || !this.admits(hostPort(host))) {
      return {
        status: 403,
        message:
          host === undefined
            ? `the request names no Host; tsxend answers to ${names}`
            : `Host "${host}" is not a name this tsxend listens as (${names}): refused, as a page that reached it by DNS rebinding would be (--allow-host adds a name)`,
      };
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !this.sameSite(origin)) {
      return {
        status: 403,
        message: `a request from the web page of ${origin} is refused: tsxend answers its own dashboard (${names}) and clients that send no Origin, such as xm and curl`,
      };
    }
    if (need.token) {
      const why = this.tokenProblem(req, need.upgrade === true);
      if (why !== null) return { status: 401, message: why };
    }
    const method = req.method ?? "GET";
    if (WITH_BODY.has(method)) {
      const want = need.body ?? "application/json";
      const type = req.headers["content-type"];
      const got = (type ?? "").split(";")[0].trim().toLowerCase();
      if (got !== want) {
        return {
          status: 415,
          message: `${method} ${new URL(req.url ?? "/", "http://tsxend").pathname} takes a body of Content-Type ${want}, not ${type === undefined ? "none" : `"${type}"`}`,
        };
      }
    }
    return null;
  }

  private sameSite(origin: string): boolean {
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return false; // "null" (a sandboxed frame, a file: page) included
    }
    // https: a page served through a TLS proxy in front of tsxend (--allow-host names it).
    if (u.protocol !== "http:" && u.protocol !== "https:") return false;
    return this.admits(hostPort(u.host, u.protocol.slice(0, -1)));
  }

  /** A "host:port" is one of ours: exactly, or a name allowed on any port. */
  private admits(hp: string | null): boolean {
    return hp !== null && (this.allowed.includes(hp) || this.allowed.includes(hp.replace(/:\d+$/, ":*")));
  }

  /** What is wrong with the request's token, naming where the right one is; null when right. */
  private tokenProblem(req: IncomingMessage, query: boolean): string | null {
    const auth = req.headers.authorization;
    const bearer = auth === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1];
    const got =
      bearer ?? (query ? new URL(req.url ?? "/", "http://tsxend").searchParams.get("token") : null) ?? null;
    if (got !== null) {
      const a = Buffer.from(got);
      const b = Buffer.from(this.o.token);
      if (a.length === b.length && timingSafeEqual(a, b)) return null;
    }
    const where =
      this.o.tokenFile === null
        ? "its token is the one it was started with (--token or TSXEN_TOKEN)"
        : `its token is in ${this.o.tokenFile}, which xm reads by itself for a tsxend on this machine`;
    const how =
      'xm takes another with --token or TSXEN_TOKEN, a browser opens the URL tsxend printed at start (/?token=...), other clients send "Authorization: Bearer <token>"';
    if (got === null)
      return `${auth === undefined ? "this tsxend wants its token" : 'the Authorization header is not "Bearer <token>"'}: ${where}; ${how}`;
    return `the token is wrong: ${where}; ${how}`;
  }
}

/**
 * tsxend against web pages (issue 12): a page on any site can make a browser send requests
 * to 127.0.0.1, so each way in is tried over real HTTP and must be refused before it does
 * anything: a cross-origin text/plain POST (no CORS preflight) that would create a domain, a
 * DNS-rebinding Host, a request without the token, and the same against the WebSocket
 * console. Then the token's way to its users: the file tsxend makes (0600), the URL it
 * prints, xm reading the file by itself, and the messages that name --token, TSXEN_TOKEN and
 * the file when the token is missing or wrong.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import type { Daemon } from "../src/daemon/daemon.js";
import { Guard } from "../src/daemon/guard.js";
import { startDaemon } from "./helpers/daemon.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const GUESTS = fileURLToPath(new URL("../../guests", import.meta.url));

interface Answer {
  status: number;
  text: string;
}

/**
 * A request as a browser (or anyone) may send it: every header as given, Host included
 * (fetch does not let a caller set Host; node:http does, as a rebinding browser would).
 */
function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The sentence of a JSON error answer. */
function error(a: Answer): string {
  return (JSON.parse(a.text) as { error: string }).error;
}

/** A WebSocket upgrade to a console: "open", or the refusal's status and text. */
function upgrade(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ open: true } | { open: false; status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
    ws.on("open", () => {
      ws.close();
      resolve({ open: true });
    });
    ws.on("unexpected-response", (_req, res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ open: false, status: res.statusCode ?? 0, text }));
    });
    ws.on("error", (e) => reject(e));
  });
}

describe("tsxend refuses what a web page can send it", () => {
  let daemon: Daemon;
  let port = 0;
  let token = "";
  let stateDir = "";
  let kernel = "";
  const host = () => `127.0.0.1:${port}`;
  const auth = () => `Bearer ${token}`;
  const domainNames = () => daemon.manager.list().map((d) => (d as { name: string }).name);
  /** The request: a configuration that would create and run domain "pwn". */
  const pwn = () =>
    JSON.stringify({ file: "/tmp/x.cfg", config: `name = "pwn"\nkernel = "${kernel}"\nmemory = 8\n` });
  /** That request with these headers (Host: ours unless given). */
  const create = (headers: Record<string, string>) =>
    raw(port, "POST", "/api/v1/domains", { host: host(), ...headers }, pwn());

  before(async () => {
    execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf"], { stdio: ["ignore", "pipe", "pipe"] });
    kernel = join(GUESTS, "build", "ev_counter.elf");
    // A page of its own stands in for the built dashboard.
    const webDir = mkdtempSync(join(tmpdir(), "tsxen-sec-web-"));
    writeFileSync(join(webDir, "dashboard.html"), "<p>the dashboard</p>\n");
    ({ daemon, port, token, stateDir } = await startDaemon({ webDir }));
  });
  after(async () => {
    await daemon.close();
  });

  it("refuses a cross-origin text/plain POST that would create a domain, token or not", async () => {
    for (const withToken of [false, true]) {
      const a = await create({
        origin: "http://evil.example",
        "content-type": "text/plain",
        ...(withToken ? { authorization: auth() } : {}),
      });
      assert.equal(a.status, 403, a.text);
      assert.match(error(a), /a request from the web page of http:\/\/evil\.example is refused/);
    }
    // Pause, destroy and migrate by the same route, and a page in a sandboxed frame (Origin: null).
    for (const [path, origin] of [
      ["/api/v1/domains/0/pause", "http://evil.example"],
      ["/api/v1/domains/0/destroy", "https://evil.example:8006"],
      ["/api/v1/domains/0/migrate", "null"],
    ]) {
      const a = await raw(
        port,
        "POST",
        path,
        { host: host(), origin, "content-type": "text/plain", authorization: auth() },
        '{"to":"evil.example"}',
      );
      assert.equal(a.status, 403, `${path}: ${a.text}`);
    }
    // A page of another port of this machine is another origin too.
    const other = await raw(port, "GET", "/api/v1/info", {
      host: host(),
      origin: "http://127.0.0.1:1",
      authorization: auth(),
    });
    assert.equal(other.status, 403);
    assert.deepEqual(domainNames(), []);
  });

  it("takes JSON bodies only: text/plain, a form, or no type at all are 415", async () => {
    for (const type of [
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ]) {
      const a = await create({ "content-type": type, authorization: auth() });
      assert.equal(a.status, 415, a.text);
      assert.match(error(a), /POST \/api\/v1\/domains takes a body of Content-Type application\/json, not "/);
    }
    // fetch(..., {mode: "no-cors", method: "POST"}) with no body sends no Content-Type.
    const none = await raw(port, "POST", "/api/v1/domains/0/pause", { host: host(), authorization: auth() });
    assert.equal(none.status, 415);
    assert.match(error(none), /takes a body of Content-Type application\/json, not none/);
    // A domain image for /receive is octet-stream, and only that.
    const image = await raw(
      port,
      "POST",
      "/api/v1/receive",
      { host: host(), "content-type": "application/json", authorization: auth() },
      "{}",
    );
    assert.equal(image.status, 415);
    assert.match(error(image), /takes a body of Content-Type application\/octet-stream/);
    assert.deepEqual(domainNames(), []);
  });

  it("refuses a Host that is not a name it listens as (DNS rebinding), pages included", async () => {
    for (const h of [`evil.example:${port}`, "127.0.0.1:1", `127.0.0.1.evil.example:${port}`, "127.0.0.1"]) {
      for (const path of ["/api/v1/domains", "/"]) {
        const a = await raw(port, "GET", path, { host: h, authorization: auth() });
        assert.equal(a.status, 403, `${h} ${path}: ${a.text}`);
        assert.match(
          error(a),
          new RegExp(
            `^Host "${h.replaceAll(".", "\\.")}" is not a name this tsxend listens as \\(127\\.0\\.0\\.1:${port}, localhost:${port}, \\[::1\\]:${port}\\).*DNS rebinding`,
          ),
        );
      }
    }
    // The rebinding page's own POST: refused on its Host before anything else is looked at.
    const post = await create({
      host: `evil.example:${port}`,
      origin: `http://evil.example:${port}`,
      "content-type": "text/plain",
    });
    assert.equal(post.status, 403);
    assert.match(error(post), /^Host "evil\.example:\d+" is not a name/);
    // Every name it does listen as works, the dashboard's own Origin with them.
    for (const h of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `LOCALHOST:${port}`]) {
      const a = await raw(port, "GET", "/api/v1/info", {
        host: h,
        origin: `http://${h}`,
        authorization: auth(),
      });
      assert.equal(a.status, 200, `${h}: ${a.text}`);
    }
    assert.deepEqual(domainNames(), []);
  });

  it("wants its token on loopback too, naming --token, TSXEN_TOKEN and the token file", async () => {
    const file = join(stateDir, "token");
    const none = await raw(port, "GET", "/api/v1/domains", { host: host() });
    assert.equal(none.status, 401);
    assert.equal(
      error(none),
      `this tsxend wants its token: its token is in ${file}, which xm reads by itself for a tsxend on this machine; xm takes another with --token or TSXEN_TOKEN, a browser opens the URL tsxend printed at start (/?token=...), other clients send "Authorization: Bearer <token>"`,
    );
    const wrong = await raw(port, "GET", "/api/v1/domains", {
      host: host(),
      authorization: `Bearer ${token.slice(1)}x`,
    });
    assert.equal(wrong.status, 401);
    assert.match(
      error(wrong),
      new RegExp(`^the token is wrong: its token is in ${file}.*--token or TSXEN_TOKEN`),
    );
    const basic = await raw(port, "GET", "/api/v1/domains", { host: host(), authorization: "Basic eDp5" });
    assert.match(error(basic), /^the Authorization header is not "Bearer <token>"/);
    // The URL's ?token= is for the browser's WebSocket only; an API call sends the header.
    const query = await raw(port, "GET", `/api/v1/domains?token=${token}`, { host: host() });
    assert.equal(query.status, 401);
    // The request without an Origin (curl): no token, nothing created.
    const curl = await create({ "content-type": "application/json" });
    assert.equal(curl.status, 401);
    assert.deepEqual(domainNames(), []);
    // The dashboard's files hold no data and need none; the right token does the rest.
    assert.deepEqual(await raw(port, "GET", "/", { host: host() }), {
      status: 200,
      text: "<p>the dashboard</p>\n",
    });
    const ok = await create({ "content-type": "application/json; charset=utf-8", authorization: auth() });
    assert.equal(ok.status, 201, ok.text);
    assert.deepEqual(domainNames(), ["pwn"]);
  });

  it("checks the WebSocket console's upgrade the same way: Origin, Host and token", async () => {
    if (!domainNames().includes("pwn")) {
      const made = await create({ "content-type": "application/json", authorization: auth() });
      assert.equal(made.status, 201, made.text);
    }
    const path = "/api/v1/domains/pwn/console";
    const bad = [
      [{ authorization: auth(), origin: "http://evil.example" }, 403, /web page of http:\/\/evil\.example/],
      [
        { authorization: auth(), host: `evil.example:${port}` },
        403,
        /Host "evil\.example:\d+" is not a name/,
      ],
      [{}, 401, /this tsxend wants its token/],
      [{ authorization: "Bearer nope" }, 401, /the token is wrong/],
    ] as const;
    for (const [headers, status, why] of bad) {
      const r = await upgrade(port, path, headers);
      assert.equal(r.open, false, JSON.stringify(headers));
      if (!r.open) {
        assert.equal(r.status, status, r.text);
        assert.match(r.text, why);
      }
    }
    // A browser's way: its own Origin, the token in the URL; xm's: the header.
    const q = await upgrade(port, `${path}?token=${token}`, { origin: `http://${host()}` });
    assert.deepEqual(q, { open: true });
    const wrongQ = await upgrade(port, `${path}?token=${token}0`, { origin: `http://${host()}` });
    assert.equal(wrongQ.open, false);
    assert.deepEqual(await upgrade(port, path, { authorization: auth() }), { open: true });
  });

  it("answers names given with allowHosts (--allow-host), and nothing else more", async () => {
    const {
      daemon: d,
      port: p,
      token: t,
    } = await startDaemon({ allowHosts: ["tsxen.test", "proxy.test:443"] });
    try {
      const get = (h: string, origin?: string) =>
        raw(p, "GET", "/api/v1/info", {
          host: h,
          authorization: `Bearer ${t}`,
          ...(origin ? { origin } : {}),
        });
      // A bare name on any port (a proxy's Host may carry none), with its pages' Origin.
      assert.equal((await get(`tsxen.test:${p}`, `http://tsxen.test:${p}`)).status, 200);
      assert.equal((await get("tsxen.test", "https://tsxen.test")).status, 200);
      // name:port on that port only.
      assert.equal((await get("proxy.test:443", "https://proxy.test")).status, 200);
      assert.equal((await get("proxy.test:444")).status, 403);
      assert.equal((await get("proxy.test")).status, 403);
      assert.equal((await get(`other.test:${p}`)).status, 403);
      assert.equal((await get(`tsxen.test:${p}`, "http://other.test")).status, 403);
    } finally {
      await d.close();
    }
    assert.throws(
      () => new Guard({ listen: "127.0.0.1", token: "t", tokenFile: null, allowHosts: ["fe80::1"] }),
      /--allow-host "fe80::1" is not a host name or name:port \(an IPv6 address in brackets\)/,
    );
  });
});

describe("the token file, the printed URL and xm", () => {
  const dirs: string[] = [];
  const temp = (name: string) => {
    const d = mkdtempSync(join(tmpdir(), name));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** `tsxen daemon` on a free port and this state directory, once it has printed its two lines. */
  async function daemon(state: string): Promise<{ d: ChildProcess; port: number; url: string }> {
    const d = spawn(process.execPath, [CLI, "daemon", "--port", "0", "--state-dir", state], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, TSXEN_TOKEN: "" },
    });
    return new Promise((resolve, reject) => {
      let out = "";
      d.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\ntsxend dashboard: (\S+)\n/.exec(out);
        if (m) resolve({ d, port: Number(m[1]), url: m[2] });
      });
      d.on("exit", (code) => reject(new Error(`tsxend exited early (${code})`)));
    });
  }

  async function stop(d: ChildProcess): Promise<void> {
    d.kill("SIGTERM");
    await new Promise((r) => d.once("exit", r));
  }

  function xm(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [CLI, "xm", ...args],
        { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env }, timeout: 20_000 },
        (err, _out, stderr) => resolve({ code: err === null ? 0 : Number(err.code), stderr }),
      );
    });
  }

  it("makes a 0600 token file at first start, prints the URL with it, and xm finds it by itself", async () => {
    const state = join(temp("tsxen-sec-"), "state");
    const { d, port, url } = await daemon(state);
    try {
      const file = join(state, "token");
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(state).mode & 0o777, 0o700);
      const token = readFileSync(file, "utf8").trim();
      assert.match(token, /^[0-9a-f]{64}$/);
      assert.equal(url, `http://127.0.0.1:${port}/?token=${token}`);
      const at = `127.0.0.1:${port}`;
      // xm reads the file of the state directory it is pointed at (as the default one).
      assert.deepEqual(await xm({ TSXEN_STATE_DIR: state }, "--daemon", at, "list"), {
        code: 0,
        stderr: "",
      });
      // Without it: the message says what xm sent and where the token is.
      const empty = temp("tsxen-sec-empty-");
      const missing = await xm({ TSXEN_STATE_DIR: empty }, "--daemon", at, "list");
      assert.equal(missing.code, 1);
      assert.equal(
        missing.stderr,
        `xm: this tsxend wants its token: its token is in ${file}, which xm reads by itself for a tsxend on this machine; xm takes another with --token or TSXEN_TOKEN, a browser opens the URL tsxend printed at start (/?token=...), other clients send "Authorization: Bearer <token>" (xm sent no token: there is no ${join(empty, "token")})\n`,
      );
      const wrong = await xm({ TSXEN_STATE_DIR: state, TSXEN_TOKEN: "nope" }, "--daemon", at, "list");
      assert.match(wrong.stderr, /^xm: the token is wrong: .*\(xm sent the token in \$TSXEN_TOKEN\)\n$/);
      const flag = await xm({ TSXEN_STATE_DIR: state }, "--daemon", at, "--token", "nope", "console", "0");
      assert.match(flag.stderr, /^xm: the token is wrong: .*\(xm sent the token given with --token\)\n$/);
      assert.equal((await xm({}, "--daemon", at, "--token", token, "list")).code, 0);
    } finally {
      await stop(d);
    }
    // The next start keeps the token (the browser's and scripts' copies stay good).
    const again = await daemon(state);
    await stop(again.d);
    assert.equal(
      again.url,
      `http://127.0.0.1:${again.port}/?token=${readFileSync(join(state, "token"), "utf8").trim()}`,
    );
  });

  it("refuses to start on a token file other users can read, or one that holds no token", async () => {
    const start = (state: string) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [CLI, "daemon", "--port", "0", "--state-dir", state],
          { timeout: 20_000, env: { ...process.env, TSXEN_TOKEN: "" } },
          (err, _o, stderr) => resolve({ code: err === null ? 0 : Number(err.code), stderr }),
        );
      });
    const state = temp("tsxen-sec-mode-");
    const file = join(state, "token");
    writeFileSync(file, "0123456789abcdef\n");
    chmodSync(file, 0o644);
    const open = await start(state);
    assert.equal(open.code, 2);
    assert.equal(
      open.stderr,
      `tsxend: ${file} can be read or written by other users (mode 644): chmod 600 it, or delete it and tsxend makes a new one\n`,
    );
    writeFileSync(file, "two words\n", { mode: 0o600 });
    chmodSync(file, 0o600);
    const junk = await start(state);
    assert.equal(junk.code, 2);
    assert.match(junk.stderr, /does not hold a token \(one word of printable ASCII\); delete it/);
  });
});

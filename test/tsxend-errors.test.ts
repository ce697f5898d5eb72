/**
 * Nothing a client, a peer or a guest does kills tsxend: every error path of every endpoint
 * is answered with a clear 4xx sentence (never a 500: the known paths must not reach the
 * safety net), the daemon answers afterwards, and a restored or migrated-in domain is a
 * domain like any other (pause, unpause, migrate, and a failed migration leaves it running).
 * Real daemons in this process, driven over HTTP.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import type { Daemon } from "../src/daemon/daemon.js";
import { apiHeaders, startDaemon } from "./helpers/daemon.js";

const GUESTS = fileURLToPath(new URL("../../guests", import.meta.url));

interface Tsxend {
  d: Daemon;
  port: number;
  token: string;
  base: string;
  /** Its log, every line. */
  log: string[];
}

interface Answer {
  status: number;
  /** The JSON answer, or for a streamed one its final line. */
  json: Record<string, unknown>;
  text: string;
}

async function tsxend(): Promise<Tsxend> {
  const log: string[] = [];
  const { daemon, port, token } = await startDaemon({ log: (l) => void log.push(l) });
  return { d: daemon, port, token, base: `http://127.0.0.1:${port}/api/v1`, log };
}

async function call(t: Tsxend, method: string, path: string, body?: unknown): Promise<Answer> {
  const r = await fetch(t.base + path, {
    method,
    headers: apiHeaders(t.token),
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  const lines = text.trim().split("\n");
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
  } catch {
    // Left empty: the assertions below say what was expected.
  }
  return { status: r.status, json, text };
}

/** A request that must be refused with this status and a sentence matching why. */
async function refused(t: Tsxend, method: string, path: string, body: unknown, status: number, why: RegExp) {
  const a = await call(t, method, path, body);
  assert.equal(a.status, status, `${method} ${path}: ${a.text}`);
  assert.match(String(a.json.error), why, `${method} ${path}`);
}

/** A streamed operation (save, restore, migrate) that must end with an error matching why. */
async function failsStreamed(t: Tsxend, path: string, body: unknown, why: RegExp) {
  const a = await call(t, "POST", path, body);
  assert.equal(a.status, 200, a.text);
  assert.match(String(a.json.error), why, `${path}: ${a.text}`);
}

async function until(what: string, check: () => Promise<boolean>, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function lastCount(text: string): number {
  const all = [...text.matchAll(/counter: (\d+)/g)];
  return all.length === 0 ? -1 : Number(all[all.length - 1][1]);
}

async function count(t: Tsxend, dom: string): Promise<number> {
  return lastCount(String((await call(t, "GET", `/domains/${dom}/console`)).json.text));
}

/** The domain's counter goes on past where it is now by more than `by`. */
async function countsOn(t: Tsxend, dom: string, by: number): Promise<void> {
  const at = await count(t, dom);
  await until(`${dom} to count on`, async () => (await count(t, dom)) > at + by);
}

async function state(t: Tsxend, dom: string): Promise<string> {
  const a = await call(t, "GET", `/domains/${dom}`);
  assert.equal(a.status, 200, a.text);
  return String(a.json.state);
}

/** DOM0_PAUSEDOMAIN and DOM0_UNPAUSEDOMAIN take, and the domain counts on. */
async function pausesAndRuns(t: Tsxend, dom: string): Promise<void> {
  for (const [op, now] of [
    ["pause", /^--p---$/],
    ["unpause", /^[r-][b-]----$/],
  ] as const) {
    const a = await call(t, "POST", `/domains/${dom}/${op}`);
    assert.equal(a.status, 200, a.text);
    assert.match(await state(t, dom), now);
  }
  await countsOn(t, dom, 2);
}

/** The daemon is alive and well: it answers, and nothing reached its safety net. */
async function healthy(t: Tsxend): Promise<void> {
  assert.equal((await call(t, "GET", "/info")).status, 200);
  assert.deepEqual(
    t.log.filter((l) => /internal error/.test(l)),
    [],
  );
}

/** A peer tsxend that misbehaves: answers by the given function. */
async function fakePeer(
  answer: (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => void,
) {
  const server = createServer(answer);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return { server, port: (server.address() as import("node:net").AddressInfo).port };
}

describe("tsxend never dies and answers every error", () => {
  let kernel: string;
  let dir: string;
  const daemons: Daemon[] = [];
  const servers: Server[] = [];
  let t: Tsxend;

  before(async () => {
    execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf", "build/hostile_victim.elf"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    kernel = join(GUESTS, "build", "ev_counter.elf");
    dir = mkdtempSync(join(tmpdir(), "tsxen-errors-"));
    t = await tsxend();
    daemons.push(t.d);
  });
  after(async () => {
    for (const d of daemons) await d.close();
    for (const s of servers) s.close();
  });

  async function counter(on: Tsxend, name: string, extra = ""): Promise<void> {
    const a = await call(on, "POST", "/domains", {
      file: "/errors-test.cfg",
      config: `name = "${name}"\nkernel = "${kernel}"\nmemory = 16\n${extra}`,
    });
    assert.equal(a.status, 201, a.text);
    await until(`${name} to count`, async () => (await count(on, name)) >= 2);
  }

  /** Saves a counter and restores it: a restored domain, running. */
  async function restored(on: Tsxend, name: string): Promise<string> {
    await counter(on, name);
    const path = join(dir, `${name}.save`);
    assert.equal((await call(on, "POST", `/domains/${name}/save`, { path })).json.ok, true);
    const r = await call(on, "POST", "/restore", { path });
    assert.equal(r.json.ok, true, r.text);
    return path;
  }

  it("(a) a restored domain pauses and unpauses, and counts on", async () => {
    await restored(t, "ra");
    await pausesAndRuns(t, "ra");
    await healthy(t);
  });

  it("(a) a migrated-in domain pauses and unpauses", async () => {
    await counter(t, "mi");
    const b = await tsxend();
    daemons.push(b.d);
    const m = await call(t, "POST", "/domains/mi/migrate", { to: `127.0.0.1:${b.port}`, token: b.token });
    assert.equal(m.json.ok, true, m.text);
    await pausesAndRuns(b, "mi");
    await healthy(b);
  });

  it("(b) migrating a restored domain to where nothing listens fails, and it runs on here", async () => {
    await restored(t, "rb");
    for (const live of [false, true]) {
      await failsStreamed(
        t,
        "/domains/rb/migrate",
        { to: "127.0.0.1:1", live },
        /^cannot migrate rb to http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED.*; it keeps running here$/,
      );
      assert.doesNotMatch(await state(t, "rb"), /p/);
    }
    await countsOn(t, "rb", 2);
    await healthy(t);
  });

  it("peers that fail: a reset mid-copy, an answer that is not JSON, a 500, a wrong token", async () => {
    await restored(t, "peer");
    const reset = await fakePeer((req) => req.once("data", () => req.socket.destroy()));
    const garbage = await fakePeer((_req, res) => res.writeHead(200).end("<html>hello</html>"));
    const broken = await fakePeer((_req, res) => res.writeHead(500).end('{"error":"disk on fire"}'));
    const partial = await fakePeer((req, res) => {
      // Answers half a response, then goes away.
      req.resume();
      req.on("end", () => {
        res.writeHead(201, { "content-length": "100" });
        res.write('{"ok":');
        setTimeout(() => res.socket?.destroy(), 10);
      });
    });
    servers.push(reset.server, garbage.server, broken.server, partial.server);
    const b = await tsxend();
    daemons.push(b.d);
    const cases: [number, boolean, RegExp][] = [
      [
        reset.port,
        false,
        /cannot migrate peer to .*: (socket hang up|.*ECONNRESET.*|.*EPIPE.*); it keeps running here/,
      ],
      [
        reset.port,
        true,
        /cannot migrate peer to .*: (socket hang up|.*ECONNRESET.*|.*EPIPE.*); it keeps running here/,
      ],
      [
        garbage.port,
        false,
        /the other side answered HTTP 200 without a tsxend's "ok"; it keeps running here/,
      ],
      [broken.port, false, /disk on fire; it keeps running here/],
      [broken.port, true, /disk on fire; it keeps running here/],
      [
        partial.port,
        false,
        /cannot migrate peer to .*: (aborted|.*ECONNRESET.*|the other side answered HTTP 201 without a tsxend's "ok"); it keeps running here/,
      ],
      [b.port, false, /token/],
    ];
    for (const [port, live, why] of cases) {
      await failsStreamed(t, "/domains/peer/migrate", { to: `127.0.0.1:${port}`, live, token: "wrong" }, why);
      assert.doesNotMatch(await state(t, "peer"), /p/, `after ${why}`);
    }
    // The refused domain did not arrive half-way over there.
    assert.equal((await call(b, "GET", "/domains/peer")).status, 404);
    await countsOn(t, "peer", 2);
    await healthy(t);
    await healthy(b);
  });

  it("bad requests: JSON, endpoints, methods, fields", async () => {
    await counter(t, "req");
    await refused(t, "POST", "/domains", "{", 400, /the request body is not a JSON object/);
    await refused(t, "POST", "/domains", "[1,2]", 400, /the request body is not a JSON object/);
    await refused(t, "POST", "/domains", "null", 400, /the request body is not a JSON object/);
    await refused(
      t,
      "POST",
      "/domains/req/pause",
      JSON.stringify({ pad: "x".repeat(1 << 20) }),
      413,
      /too large/,
    );
    await refused(t, "GET", "/nope", undefined, 404, /no such endpoint/);
    await refused(t, "PUT", "/domains", undefined, 405, /PUT is not allowed/);
    await refused(t, "PATCH", "/domains/req", undefined, 405, /PATCH is not allowed/);
    await refused(t, "GET", "/domains/req/pause", undefined, 405, /GET is not allowed/);
    await refused(t, "POST", "/domains/req/frobnicate", {}, 404, /no such domain operation "frobnicate"/);
    const r404 = await fetch(`http://127.0.0.1:${t.port}/elsewhere`, { headers: apiHeaders(t.token) });
    assert.equal(r404.status, 404);
    // xm create
    await refused(t, "POST", "/domains", { config: "name='x'" }, 400, /the request needs "file"/);
    await refused(t, "POST", "/domains", { file: "/x.cfg" }, 400, /the request needs "config"/);
    await refused(t, "POST", "/domains", { file: "/x.cfg", config: 'name = "x"\n' }, 400, /kernel/);
    await refused(t, "POST", "/domains", { file: "/x.cfg", config: "name = = 3\n" }, 400, /x\.cfg/);
    await refused(
      t,
      "POST",
      "/domains",
      { file: "/x.cfg", config: `kernel = "/no/such.elf"\nmemory = 8\nname = "x"\n` },
      400,
      /cannot read the kernel \/no\/such\.elf/,
    );
    await refused(
      t,
      "POST",
      "/domains",
      {
        file: "/x.cfg",
        config: `kernel = "${kernel}"\nmemory = 8\nname = "x"\n`,
        overrides: ["no equals sign"],
      },
      400,
      /./,
    );
    await refused(
      t,
      "POST",
      "/domains",
      { file: "/x.cfg", config: `kernel = "${kernel}"\nmemory = 8\nname = "req"\n` },
      409,
      /a domain named "req" already exists/,
    );
    await refused(
      t,
      "POST",
      "/domains",
      { file: "/x.cfg", config: `kernel = "${kernel}"\nmemory = 100000\nname = "huge"\n` },
      400,
      /./,
    );
    // Unknown domains, for every operation.
    for (const op of [
      "pause",
      "unpause",
      "shutdown",
      "reboot",
      "destroy",
      "pincpu",
      "mem-max",
      "mem-set",
      "sched-bvt",
      "save",
      "migrate",
    ])
      await refused(t, "POST", `/domains/nosuch/${op}`, {}, 404, /no domain "nosuch"; domains: .*req/);
    await refused(t, "GET", "/domains/nosuch", undefined, 404, /no domain "nosuch"/);
    await refused(t, "DELETE", "/domains/nosuch", undefined, 404, /no domain "nosuch"/);
    await refused(t, "GET", "/domains/nosuch/console", undefined, 404, /no domain "nosuch"/);
    await refused(t, "POST", "/domains/0/pause", {}, 400, /Domain-0 is the toolstack's own domain/);
    // Missing and bad fields.
    await refused(t, "POST", "/domains/req/pincpu", {}, 400, /the request needs "cpu" \(a number\)/);
    await refused(t, "POST", "/domains/req/pincpu", { cpu: 7 }, 400, /CPU 7 does not exist/);
    await refused(t, "POST", "/domains/req/mem-max", { mib: "lots" }, 400, /the request needs "mib"/);
    await refused(t, "POST", "/domains/req/mem-max", { mib: -1 }, 400, /memory must be 1\.\.4096 MiB/);
    await refused(t, "POST", "/domains/req/mem-set", { mib: 9999 }, 400, /above the domain's maximum/);
    await refused(t, "POST", "/domains/req/sched-bvt", { mcuadv: 1 }, 400, /the request needs "warpback"/);
    await refused(
      t,
      "POST",
      "/domains/req/sched-bvt",
      { mcuadv: 0, warpback: 0, warpvalue: 0, warpl: 0, warpu: 0 },
      400,
      /mcuadv must be/,
    );
    await refused(t, "POST", "/sched/bvt-ctxallow", {}, 400, /the request needs "ns"/);
    await refused(t, "POST", "/sched/bvt-ctxallow", { ns: 5 }, 400, /ctx_allow must be/);
    await refused(
      t,
      "POST",
      "/domains/req/shutdown",
      { timeout: -3 },
      400,
      /"timeout" must be a number of seconds/,
    );
    await refused(t, "POST", "/domains/req/save", {}, 400, /the request needs "path"/);
    await refused(
      t,
      "POST",
      "/domains/req/save",
      { path: "rel.save" },
      400,
      /the save path must be absolute/,
    );
    await refused(t, "POST", "/restore", {}, 400, /the request needs "path"/);
    await refused(t, "POST", "/restore", { path: "rel.save" }, 400, /the image path must be absolute/);
    await refused(t, "POST", "/domains/req/migrate", {}, 400, /the request needs "to"/);
    await refused(
      t,
      "POST",
      "/domains/req/migrate",
      { to: "ftp://x/y" },
      400,
      /not a port, host, host:port or http:\/\/ URL/,
    );
    assert.doesNotMatch(await state(t, "req"), /p/);
    await healthy(t);
  });

  it("sysrq: bad keys, unknown domains, no token, a paused, deaf or shut-down guest", async () => {
    await counter(t, "sq", 'on_poweroff = "preserve"\n');
    const one = (k: string) =>
      new RegExp(
        `^a sysrq key is one printable character, not ${JSON.stringify(k).replace(/[\\^$.*+?()[\]{}|]/g, "\\$&")}$`,
      );
    await refused(t, "POST", "/domains/sq/sysrq", {}, 400, /^the request needs "key" \(a string\)$/);
    await refused(
      t,
      "POST",
      "/domains/sq/sysrq",
      { key: 116 },
      400,
      /^the request needs "key" \(a string\)$/,
    );
    for (const k of ["ab", " ", "\u00e9", "\n", "\u007f"])
      await refused(t, "POST", "/domains/sq/sysrq", { key: k }, 400, one(k));
    await refused(
      t,
      "POST",
      "/domains/nosuch/sysrq",
      { key: "t" },
      404,
      /^no domain "nosuch"; domains: .*sq/,
    );
    await refused(t, "POST", "/domains/0/sysrq", { key: "t" }, 400, /Domain-0 is the toolstack's own domain/);
    await refused(
      t,
      "GET",
      "/domains/sq/sysrq",
      undefined,
      405,
      /^GET is not allowed on \/api\/v1\/domains\/sq\/sysrq$/,
    );
    // No token, a wrong one: 401 naming where the token is; the guest is not asked.
    for (const [auth, why] of [
      [undefined, /^this tsxend wants its token: its token is in .*token/],
      ["Bearer nope", /^the token is wrong: its token is in /],
      ["Basic x", /^the Authorization header is not "Bearer <token>": /],
    ] as const) {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (auth !== undefined) headers.authorization = auth;
      const r = await fetch(`${t.base}/domains/sq/sysrq`, { method: "POST", headers, body: '{"key":"u"}' });
      assert.equal(r.status, 401);
      assert.match(String(((await r.json()) as { error?: unknown }).error), why);
    }
    // A good key reaches the guest; the refused ones never did.
    assert.equal((await call(t, "POST", "/domains/sq/sysrq", { key: "t" })).status, 200);
    const text = async () => String((await call(t, "GET", "/domains/sq/console")).json.text);
    await until("sq to take sysrq t", async () => /counter: sysrq t\n/.test(await text()));
    assert.deepEqual((await text()).match(/counter: sysrq ./g), ["counter: sysrq t"]);
    // Paused, then shut down: refused with the state.
    assert.equal((await call(t, "POST", "/domains/sq/pause")).status, 200);
    await refused(
      t,
      "POST",
      "/domains/sq/sysrq",
      { key: "t" },
      409,
      /^domain "sq" is paused and cannot answer; xm unpause it first/,
    );
    assert.equal((await call(t, "POST", "/domains/sq/unpause")).status, 200);
    // A guest that never reads its control ring: the request times out.
    const deaf = await call(t, "POST", "/domains", {
      file: "/errors-test.cfg",
      // An idle kernel that binds no control-interface port (not hostile_victim: its page-by-page
      // fill, each hypercall followed by an invariant check, held the event loop for seconds).
      config: `name = "deaf"\nkernel = "${join(GUESTS, "build", "bench_idle.elf")}"\nmemory = 4\nextra = "tick_ms=0"\n`,
    });
    assert.equal(deaf.status, 201, deaf.text);
    await refused(
      t,
      "POST",
      "/domains/deaf/sysrq",
      { key: "t", timeout: 0.5 },
      504,
      /^domain "deaf" did not answer sysrq t within 0\.5 s: its kernel does not listen on the control interface; xm destroy stops it$/,
    );
    // Nothing of the request reached the kernel; destroyed, it is gone, and tsxend is unharmed.
    assert.equal((await call(t, "DELETE", "/domains/deaf")).status, 200);
    await until("deaf to go", async () => (await call(t, "GET", "/domains/deaf")).status === 404);
    assert.equal((await call(t, "POST", "/domains/sq/shutdown", {})).status, 200);
    await until("sq to shut down", async () => /s/.test(await state(t, "sq")));
    await refused(
      t,
      "POST",
      "/domains/sq/sysrq",
      { key: "t" },
      409,
      /^cannot send sysrq t to domain "sq": it has shut down \(xm destroy removes it\)$/,
    );
    assert.equal((await call(t, "DELETE", "/domains/sq")).status, 200);
    await healthy(t);
  });

  it("wrong states: paused, shut down, a save that cannot be written, images that are not", async () => {
    await counter(t, "st", 'on_poweroff = "preserve"\n');
    // Paused: cannot answer a shutdown, cannot move live.
    assert.equal((await call(t, "POST", "/domains/st/pause")).status, 200);
    await refused(t, "POST", "/domains/st/shutdown", {}, 409, /paused and cannot answer/);
    await refused(t, "POST", "/domains/st/migrate", { to: "127.0.0.1:1", live: true }, 409, /st is paused/);
    assert.equal((await call(t, "POST", "/domains/st/unpause")).status, 200);
    // A save where nothing can be written: the domain runs on.
    await failsStreamed(
      t,
      "/domains/st/save",
      { path: "/no/such/dir/st.save" },
      /cannot write \/no\/such\/dir\/st\.save: .*; the domain keeps running/,
    );
    assert.doesNotMatch(await state(t, "st"), /p/);
    // Restores of what is not an image.
    await failsStreamed(t, "/restore", { path: join(dir, "none.save") }, /cannot read .*none\.save/);
    writeFileSync(join(dir, "junk.save"), "hello");
    await failsStreamed(t, "/restore", { path: join(dir, "junk.save") }, /not a tsxen save image/);
    await failsStreamed(t, "/restore", { path: dir }, /cannot read/);
    // Shut down (preserved): nothing but destroy applies.
    assert.equal((await call(t, "POST", "/domains/st/shutdown", {})).status, 200);
    await until("st to shut down", async () => /s/.test(await state(t, "st")));
    for (const op of ["pause", "unpause", "shutdown", "reboot", "mem-set"])
      await refused(t, "POST", `/domains/st/${op}`, { mib: 8 }, 409, /it has shut down/);
    for (const op of ["save", "migrate"]) {
      const a = await call(t, "POST", `/domains/st/${op}`, { path: join(dir, "st.save"), to: "127.0.0.1:1" });
      assert.ok(a.status >= 400 && a.status < 500, a.text);
      assert.match(String(a.json.error), /st/);
    }
    assert.equal((await call(t, "DELETE", "/domains/st")).status, 200);
    await healthy(t);
  });

  it("a truncated or damaged image, by restore and by receive, changes nothing", async () => {
    const path = await restored(t, "img");
    const image = readFileSync(path);
    await call(t, "DELETE", "/domains/img");
    const cut = join(dir, "cut.save");
    writeFileSync(cut, image.subarray(0, image.length >> 1));
    await failsStreamed(t, "/restore", { path: cut }, /the save image is truncated/);
    const flipped = new Uint8Array(image);
    flipped[flipped.length >> 1] ^= 1;
    writeFileSync(cut, flipped);
    await failsStreamed(t, "/restore", { path: cut }, /its SHA-256 does not match/);
    const post = (p: string, bytes: Uint8Array<ArrayBuffer>) =>
      fetch(`${t.base}${p}`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream", authorization: `Bearer ${t.token}` },
        body: bytes,
      });
    for (const [p, bytes, status, why] of [
      ["/receive", flipped, 400, /SHA-256 does not match/],
      ["/receive", new Uint8Array(3), 400, /not a tsxen save image/],
      ["/receive/live", new Uint8Array(0), 400, /not a tsxen save image/],
      ["/receive/live/00ff/finish", new Uint8Array(8), 404, /no live migration 00ff/],
    ] as const) {
      const r = await post(p, bytes);
      assert.equal(r.status, status, p);
      assert.match(((await r.json()) as { error: string }).error, why);
    }
    // A live session, then deltas that are damaged or carry no header at the end.
    const first = await post("/receive/live", image);
    assert.equal(first.status, 201);
    const { session } = (await first.json()) as { session: string };
    const bad = await post(`/receive/live/${session}/pages`, new Uint8Array(5));
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /the migration delta is damaged/);
    const noHeader = await post(`/receive/live/${session}/finish`, new Uint8Array(8));
    assert.equal(noHeader.status, 400);
    assert.match(((await noHeader.json()) as { error: string }).error, /carries the header/);
    assert.equal((await call(t, "GET", "/domains/img")).status, 404);
    await healthy(t);
  });

  it("clients that go away: a body cut off, a console reset, a WebSocket frame that is garbage", async () => {
    await counter(t, "cli");
    // A body cut off half-way.
    await new Promise<void>((done) => {
      const req = request(`${t.base}/domains`, {
        method: "POST",
        headers: { ...apiHeaders(t.token), "content-length": "1000" },
      });
      req.on("error", () => done());
      req.write('{"file":');
      setTimeout(() => {
        req.destroy();
        done();
      }, 50);
    });
    // A console whose client sends a frame no WebSocket may send (reserved opcode 3).
    const ws = new WebSocket(`ws://127.0.0.1:${t.port}/api/v1/domains/cli/console`, {
      headers: { authorization: `Bearer ${t.token}` },
    });
    await new Promise((ok, fail) => {
      ws.once("open", ok);
      ws.once("error", fail);
    });
    const closed = new Promise((ok) => ws.once("close", ok));
    (ws as unknown as { _socket: import("node:net").Socket })._socket.write(
      Buffer.from([0x83, 0x80, 0, 0, 0, 0]),
    );
    await closed;
    // A console for a domain that is not there, and an upgrade then a reset.
    const missing = new WebSocket(`ws://127.0.0.1:${t.port}/api/v1/domains/nosuch/console`, {
      headers: { authorization: `Bearer ${t.token}` },
    });
    const status = await new Promise<number>((ok) =>
      missing.once("unexpected-response", (_q, res) => ok(res.statusCode ?? 0)),
    );
    assert.equal(status, 404);
    await new Promise<void>((ok) => {
      const s = connect(t.port, "127.0.0.1", () => {
        s.write(
          `GET /api/v1/domains/cli/console HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nAuthorization: Bearer ${t.token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
        );
        s.resetAndDestroy();
        ok();
      });
    });
    await countsOn(t, "cli", 1);
    await healthy(t);
  });

  it("the safety net: a bug in a handler is logged and answered 500, and the daemon runs on", async () => {
    const b = await tsxend();
    daemons.push(b.d);
    const physinfo = b.d.manager.physinfo;
    b.d.manager.physinfo = () => {
      throw new TypeError("a bug");
    };
    try {
      const a = await call(b, "GET", "/info");
      assert.equal(a.status, 500);
      assert.match(String(a.json.error), /internal error in tsxend .*a bug/);
      assert.ok(
        b.log.some((l) => /internal error serving GET \/api\/v1\/info: TypeError: a bug/.test(l)),
        b.log.join("\n"),
      );
    } finally {
      b.d.manager.physinfo = physinfo;
    }
    assert.equal((await call(b, "GET", "/info")).status, 200);
    assert.equal((await call(b, "GET", "/domains")).status, 200);
  });
});

/**
 * xm migrate (without --live): a counter domain moves from one tsxend to another and counts
 * on there; a failed copy leaves it running where it was; bad requests are named. Two real
 * daemons in this process, driven through their HTTP API and through `tsxen xm migrate`.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type Daemon, migrationTarget } from "../src/daemon/daemon.js";
import { apiHeaders, startDaemon } from "./helpers/daemon.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const GUESTS = fileURLToPath(new URL("../../guests", import.meta.url));

/** Each daemon's token, by its API's base URL. */
const tokens = new Map<string, string>();

async function daemon(given?: string): Promise<{ d: Daemon; base: string; port: number; token: string }> {
  const { daemon: d, port, token } = await startDaemon({ token: given });
  const base = `http://127.0.0.1:${port}/api/v1`;
  tokens.set(base, token);
  return { d, base, port, token };
}

async function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token = tokens.get(base) ?? "",
): Promise<Response> {
  const headers = apiHeaders(token);
  return fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** The final line of a streamed (ndjson) answer. */
async function final(r: Response): Promise<Record<string, unknown>> {
  const lines = (await r.text()).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
}

async function consoleText(base: string, dom: string): Promise<string> {
  return ((await (await api(base, "GET", `/domains/${dom}/console`)).json()) as { text: string }).text;
}

/** The last counter value a console shows. */
function lastCount(text: string): number {
  const all = [...text.matchAll(/counter: (\d+)/g)];
  return all.length === 0 ? -1 : Number(all[all.length - 1][1]);
}

/**
 * The counter's console after a move: no check failed (its p2m remap and x87 checks, each
 * tick) and the counts run 1, 2, 3, ... with none lost or repeated across the move.
 */
function assertCountedOn(text: string): void {
  assert.doesNotMatch(text, /FAIL|failed/);
  const counts = [...text.matchAll(/^counter: (\d+)$/gm)].map((x) => Number(x[1]));
  assert.ok(counts.length >= 3, text);
  assert.deepEqual(
    counts,
    counts.map((_, i) => i + 1),
  );
}

async function until(what: string, check: () => Promise<boolean>, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("xm migrate", () => {
  let kernel: string;
  const daemons: Daemon[] = [];
  before(() => {
    execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf"], { stdio: ["ignore", "pipe", "pipe"] });
    kernel = join(GUESTS, "build", "ev_counter.elf");
  });
  after(async () => {
    for (const d of daemons) await d.close();
  });

  async function withCounter(name: string): Promise<{ a: Awaited<ReturnType<typeof daemon>> }> {
    const a = await daemon();
    daemons.push(a.d);
    const r = await api(a.base, "POST", "/domains", {
      file: "/migrate-test.cfg",
      config: `name = "${name}"\nkernel = "${kernel}"\nmemory = 16\n`,
    });
    assert.equal(r.status, 201, await r.clone().text());
    await until("the counter to count", async () => lastCount(await consoleText(a.base, name)) >= 3);
    return { a };
  }

  it("moves a running domain to another tsxend, where it counts on", async () => {
    const { a } = await withCounter("ctr");
    const b = await daemon();
    daemons.push(b.d);
    const r = await final(
      await api(a.base, "POST", "/domains/ctr/migrate", { to: `127.0.0.1:${b.port}`, token: b.token }),
    );
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.to, `http://127.0.0.1:${b.port}`);
    assert.equal((await api(a.base, "GET", "/domains/ctr")).status, 404);
    const there = await consoleText(b.base, "ctr");
    const at = lastCount(there);
    assert.ok(at >= 3, there);
    await until(
      "the counter to count on over there",
      async () => lastCount(await consoleText(b.base, "ctr")) >= at + 3,
    );
    assertCountedOn(await consoleText(b.base, "ctr"));
  });

  it("leaves the domain running here when the other side refuses it", async () => {
    const { a } = await withCounter("dup");
    const b = await daemon();
    daemons.push(b.d);
    // The other side has a domain of that name already.
    await api(b.base, "POST", "/domains", {
      file: "/x.cfg",
      config: `name = "dup"\nkernel = "${kernel}"\nmemory = 8\n`,
    });
    const r = await final(
      await api(a.base, "POST", "/domains/dup/migrate", { to: `127.0.0.1:${b.port}`, token: b.token }),
    );
    assert.match(
      String(r.error),
      /cannot migrate dup to .*: a domain named "dup" is running already.*; it keeps running here/,
    );
    const info = (await (await api(a.base, "GET", "/domains/dup")).json()) as { state: string };
    assert.doesNotMatch(info.state, /p/);
    const at = lastCount(await consoleText(a.base, "dup"));
    await until("the counter to count on here", async () => lastCount(await consoleText(a.base, "dup")) > at);
    // Nobody listening there.
    const r2 = await final(await api(a.base, "POST", "/domains/dup/migrate", { to: "127.0.0.1:1" }));
    assert.match(
      String(r2.error),
      /cannot migrate dup to http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED.*; it keeps running here/,
    );
    assert.equal((await api(a.base, "GET", "/domains/dup")).status, 200);
    // Both copies that failed left it counting on here, unharmed.
    const here = lastCount(await consoleText(a.base, "dup"));
    await until(
      "the counter to count on here",
      async () => lastCount(await consoleText(a.base, "dup")) >= here + 2,
    );
    assertCountedOn(await consoleText(a.base, "dup"));
  });

  it("names bad requests: a target that is not a host, a paused domain to move live", async () => {
    const { a } = await withCounter("req");
    const bad = await api(a.base, "POST", "/domains/req/migrate", { to: "ftp://x/y" });
    assert.equal(bad.status, 400);
    assert.match(
      ((await bad.json()) as { error: string }).error,
      /"ftp:\/\/x\/y" is not a port, host, host:port or http:\/\/ URL/,
    );
    await api(a.base, "POST", "/domains/req/pause", {});
    const paused = await api(a.base, "POST", "/domains/req/migrate", { to: "127.0.0.1", live: true });
    assert.equal(paused.status, 409);
    assert.match(
      ((await paused.json()) as { error: string }).error,
      /req is paused; live migration moves a running domain/,
    );
    assert.equal(migrationTarget("example.org"), "http://example.org:8006");
    assert.equal(migrationTarget("10.0.0.2:9000"), "http://10.0.0.2:9000");
    assert.equal(migrationTarget("http://[::1]:7000"), "http://[::1]:7000");
    assert.equal(migrationTarget("9001"), "http://127.0.0.1:9001");
    assert.throws(() => migrationTarget("http://host/path"), /not a port, host, host:port or http:\/\/ URL/);
  });

  it("moves a running domain live: it runs during the copy, and only the last pages go while it is stopped", async () => {
    const { a } = await withCounter("live");
    const b = await daemon();
    daemons.push(b.d);
    const before = lastCount(await consoleText(a.base, "live"));
    const r = await final(
      await api(a.base, "POST", "/domains/live/migrate", {
        to: `127.0.0.1:${b.port}`,
        token: b.token,
        live: true,
      }),
    );
    assert.equal(r.ok, true, JSON.stringify(r));
    const rounds = r.rounds as number[];
    // The first round is the whole domain (16 MiB: 4096 pages and the page tables and p2m).
    assert.ok(rounds[0] >= 4096, JSON.stringify(r));
    assert.ok(rounds.length >= 2, JSON.stringify(r));
    assert.ok((r.finalPages as number) < rounds[0] / 10, JSON.stringify(r));
    assert.equal(typeof r.downtimeMs, "number");
    assert.equal((await api(a.base, "GET", "/domains/live")).status, 404);
    // It kept counting while the rounds went over, and counts on over there.
    const there = lastCount(await consoleText(b.base, "live"));
    assert.ok(there > before, `${there} after ${before}`);
    await until(
      "the counter to count on over there",
      async () => lastCount(await consoleText(b.base, "live")) >= there + 3,
    );
    assertCountedOn(await consoleText(b.base, "live"));
  });

  it("refuses live deltas for a migration that is not under way, and damaged ones", async () => {
    const b = await daemon();
    daemons.push(b.d);
    const post = (path: string, bytes: Uint8Array<ArrayBuffer>) =>
      fetch(`${b.base}${path}`, {
        method: "POST",
        headers: { ...apiHeaders(b.token), "content-type": "application/octet-stream" },
        body: bytes,
      });
    const none = await post("/receive/live/0123abcd/pages", new Uint8Array(8));
    assert.equal(none.status, 404);
    assert.match(
      ((await none.json()) as { error: string }).error,
      /no live migration 0123abcd is under way here/,
    );
    const junk = await post("/receive/live", new Uint8Array(100));
    assert.equal(junk.status, 400);
    assert.match(((await junk.json()) as { error: string }).error, /not a tsxen save image/);
    // A real image (xm save's), offered again and again: four migrations may arrive at once.
    const { a } = await withCounter("img");
    const path = join(mkdtempSync(join(tmpdir(), "tsxen-mig-")), "img.save");
    assert.equal((await final(await api(a.base, "POST", "/domains/img/save", { path }))).ok, true);
    const image = new Uint8Array(readFileSync(path));
    for (let i = 0; i < 4; i++) assert.equal((await post("/receive/live", image)).status, 201);
    const busy = await post("/receive/live", image);
    assert.equal(busy.status, 503);
    assert.match(
      ((await busy.json()) as { error: string }).error,
      /4 live migrations are arriving here already/,
    );
    // (The limit is checked before any image is decoded.)
    assert.equal((await post("/receive/live", image.slice(0, image.length - 1))).status, 503);
  });

  it("xm migrate moves it and says where; the other side's token is given with --dest-token", async () => {
    const { a } = await withCounter("cli");
    const b = await daemon("t0ken");
    daemons.push(b.d);
    const xm = (...args: string[]) =>
      promisify(execFile)(process.execPath, [
        CLI,
        "xm",
        "--daemon",
        a.base.replace("/api/v1", ""),
        "--token",
        a.token,
        ...args,
      ]);
    await assert.rejects(
      xm("migrate", "cli", `127.0.0.1:${b.port}`),
      /cannot migrate cli to .*: this tsxend wants its token: its token is the one it was started with \(--token or TSXEN_TOKEN\)/,
    );
    const { stdout } = await xm("migrate", "cli", `127.0.0.1:${b.port}`, "--dest-token", "t0ken");
    assert.match(
      stdout,
      new RegExp(`^Migrated cli to http://127\\.0\\.0\\.1:${b.port}: domain cli \\(id 1\\) there\\n$`),
    );
    const r = await api(b.base, "GET", "/domains/cli", undefined, "t0ken");
    assert.equal(r.status, 200);
    const cliText = async (base: string, token: string) =>
      ((await (await api(base, "GET", "/domains/cli/console", undefined, token)).json()) as { text: string })
        .text;
    const moved = lastCount(await cliText(b.base, "t0ken"));
    await until(
      "the counter to count on over there",
      async () => lastCount(await cliText(b.base, "t0ken")) >= moved + 3,
    );
    assertCountedOn(await cliText(b.base, "t0ken"));
    // And live, back again.
    const back = await promisify(execFile)(process.execPath, [
      CLI,
      "xm",
      "--daemon",
      `127.0.0.1:${b.port}`,
      "--token",
      "t0ken",
      "migrate",
      "--live",
      "cli",
      a.base.replace("/api/v1", ""),
      "--dest-token",
      a.token,
    ]);
    assert.match(
      back.stdout,
      /^Migrated cli to http:\/\/127\.0\.0\.1:\d+: domain cli \(id \d+\) there \(live: pages sent per round \d+(, \d+)+, then \d+ with the domain stopped for \d+ ms\)\n$/,
    );
    assert.equal((await api(a.base, "GET", "/domains/cli")).status, 200);
    const home = lastCount(await cliText(a.base, a.token));
    await until(
      "the counter to count on back here",
      async () => lastCount(await cliText(a.base, a.token)) >= home + 3,
    );
    assertCountedOn(await cliText(a.base, a.token));
  });
});

/**
 * The toolstack loses nothing: tsxend processes (spawned as a user runs them) are stopped
 * with SIGTERM, whereupon their domains are saved into the state directory and run on at the
 * next start, and killed with SIGKILL at seeded random points of save, restore and migrate,
 * whereupon the destination holds a complete image (or domain) or nothing, and the next
 * start removes what the killed one left. Also: xm console piped into head ends quietly.
 *
 * The kill points come from TSXEN_CRASH_SEED (default 12); a failure names the seed.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { decodeImage } from "../src/tools/save.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const GUESTS = fileURLToPath(new URL("../../guests", import.meta.url));
const EXAMPLES = fileURLToPath(new URL("../../examples", import.meta.url));
const SEED = Number(process.env.TSXEN_CRASH_SEED ?? 12);
const TMP = /^\..*\.tmp-\d+-\d+$/;

/** A seeded PRNG (mulberry32): the kill points of a run are the seed's. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  };
}

/** A tsxend process of its own state directory. */
class Tsxend {
  proc!: ChildProcess;
  port = 0;
  token = "";
  log = "";
  exited: Promise<number | null> = Promise.resolve(null);

  constructor(
    readonly state: string,
    readonly args: string[] = [],
    /** Node.js options before the script (a preloaded module). */
    readonly node: string[] = [],
  ) {}

  get base(): string {
    return `http://127.0.0.1:${this.port}/api/v1`;
  }

  async start(): Promise<this> {
    const p = spawn(
      process.execPath,
      [
        ...this.node,
        CLI,
        "daemon",
        "--port",
        "0",
        "--machine-memory",
        "192",
        "--state-dir",
        this.state,
        ...this.args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.proc = p;
    this.log = "";
    p.stderr?.on("data", (b: Buffer) => {
      this.log += b.toString();
    });
    this.exited = new Promise((ok) => p.once("exit", (code) => ok(code)));
    this.port = await new Promise<number>((resolve, reject) => {
      let out = "";
      p.stdout?.on("data", (b: Buffer) => {
        out += b.toString();
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      p.once("exit", (code) => reject(new Error(`tsxend exited early (${code}): ${this.log}`)));
    });
    this.token = readFileSync(join(this.state, "token"), "utf8").trim();
    return this;
  }

  async stop(signal: NodeJS.Signals): Promise<number | null> {
    this.proc.kill(signal);
    return this.exited;
  }

  fetch(method: string, path: string, body?: unknown): Promise<Response> {
    return fetch(this.base + path, {
      method,
      headers: { "content-type": "application/json", authorization: `Bearer ${this.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async json(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    return (await (await this.fetch(method, path, body)).json()) as Record<string, unknown>;
  }

  async console(dom: string): Promise<string> {
    return String((await this.json("GET", `/domains/${dom}/console`)).text ?? "");
  }

  async status(path: string): Promise<number> {
    return (await this.fetch("GET", path)).status;
  }
}

function counts(text: string): number[] {
  return [...text.matchAll(/counter: (\d+)/g)].map((m) => Number(m[1]));
}

async function until(what: string, check: () => Promise<boolean>, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function counting(t: Tsxend, dom: string, beyond = 2): Promise<void> {
  const c = counts(await t.console(dom));
  const from = c.length === 0 ? 0 : c[c.length - 1];
  await until(`${dom} to count past ${from + beyond}`, async () => {
    const now = counts(await t.console(dom));
    return now.length > 0 && now[now.length - 1] >= from + beyond;
  });
}

/** Sends a streamed request and SIGKILLs the daemon after `lines` progress lines (or when it ends). */
async function killAfter(t: Tsxend, path: string, body: unknown, lines: number): Promise<void> {
  const res = await t.fetch("POST", path, body).catch(() => null);
  let seen = 0;
  if (res !== null && lines >= 0) {
    try {
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += Buffer.from(value).toString().split("\n").length - 1;
        if (seen >= lines) break;
      }
    } catch {
      // The stream broke: the daemon is dying anyway.
    }
  }
  await t.stop("SIGKILL");
}

function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((f) => TMP.test(f));
}

describe("tsxend keeps its domains over a restart, and a kill loses nothing it had finished", () => {
  let work: string;
  let config: string;
  const running: Tsxend[] = [];
  const daemon = async (state: string, args: string[] = [], node: string[] = []): Promise<Tsxend> => {
    const t = await new Tsxend(state, args, node).start();
    running.push(t);
    return t;
  };

  before(() => {
    execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf"], { stdio: ["ignore", "pipe", "pipe"] });
    work = mkdtempSync(join(tmpdir(), "tsxen-restart-"));
    config = join(work, "big.cfg");
    // 32 MiB: an image written in many steps (1 MiB each), so kills land mid-way.
    writeFileSync(
      config,
      `kernel = "${join(GUESTS, "build", "ev_counter.elf")}"\nmemory = 32\nname = "big"\n`,
    );
  });
  after(() => {
    for (const t of running)
      if (t.proc.exitCode === null && t.proc.signalCode === null) t.proc.kill("SIGKILL");
    rmSync(work, { recursive: true, force: true });
  });

  async function create(t: Tsxend, file: string, name: string, vars: string[] = []): Promise<void> {
    const r = await promisify(execFile)(process.execPath, [
      CLI,
      "xm",
      "--daemon",
      `127.0.0.1:${t.port}`,
      "--token",
      t.token,
      "create",
      file,
      ...vars,
    ]);
    assert.match(r.stdout, new RegExp(`Started domain ${name}`));
    await counting(t, name);
  }

  it("SIGTERM saves every domain into the state directory; the next start runs them on", async () => {
    const state = join(work, "state-restart");
    let t = await daemon(state);
    await create(t, join(EXAMPLES, "counter.cfg"), "counter1", ["vmid=1"]);
    await create(t, join(EXAMPLES, "counter.cfg"), "counter2", ["vmid=2"]);
    assert.equal((await t.fetch("POST", "/domains/counter2/pause")).status, 200);
    const before = counts(await t.console("counter1"));
    assert.equal(await t.stop("SIGTERM"), 0, t.log);
    assert.match(t.log, /saving 2 domain\(s\) into /);
    assert.match(t.log, /saving domain \d+ \(counter1\): 100%/);
    assert.match(t.log, /saved domain \d+ \(counter1\) to .*counter1\.save/);
    assert.match(t.log, /saved domain \d+ \(counter2\) to .*counter2\.paused\.save/);
    assert.deepEqual(readdirSync(join(state, "domains")).sort(), [
      "00001-counter1.save",
      "00002-counter2.paused.save",
    ]);

    t = await daemon(state);
    assert.match(t.log, /restored counter1 as domain \d+ from /);
    assert.match(t.log, /restored counter2 as domain \d+ \(paused\) from /);
    assert.deepEqual(readdirSync(join(state, "domains")), []);
    assert.match(String((await t.json("GET", "/domains/counter2")).state), /^--p---$/);
    await counting(t, "counter1", 5);
    // One console, before and after: every count once, in order, none failed.
    const text = await t.console("counter1");
    const all = counts(text);
    assert.ok(all.length > before.length + 4, text.slice(-400));
    assert.deepEqual(all.slice(0, before.length), before);
    for (let i = 1; i < all.length; i++)
      assert.equal(all[i], all[i - 1] + 1, `count ${all[i]} after ${all[i - 1]}`);
    assert.doesNotMatch(text, /FAIL/);
    // The paused one unpauses and counts on too.
    assert.equal((await t.fetch("POST", "/domains/counter2/unpause")).status, 200);
    await counting(t, "counter2", 3);
    assert.doesNotMatch(await t.console("counter2"), /FAIL/);
    // A second tsxend on the same state directory would restore the same domains: refused.
    const second = spawnSync(process.execPath, [CLI, "daemon", "--port", "0", "--state-dir", state], {
      encoding: "utf8",
      timeout: 20000,
    });
    assert.equal(second.status, 2, second.stderr);
    assert.match(
      second.stderr,
      new RegExp(`another tsxend \\(pid ${t.proc.pid}\\) uses the state directory`),
    );
    // --on-stop destroy keeps nothing.
    assert.equal(await t.stop("SIGTERM"), 0);
    t = await daemon(state, ["--on-stop", "destroy"]);
    assert.equal((await t.json("GET", "/domains/counter1")).id !== undefined, true);
    assert.equal(await t.stop("SIGTERM"), 0);
    assert.match(t.log, /SIGTERM: stopping guests/);
    assert.deepEqual(readdirSync(join(state, "domains")), []);
    t = await daemon(state);
    assert.equal(await t.status("/domains/counter1"), 404);
    await t.stop("SIGKILL");
  });

  it("xm console piped into head ends quietly; an exception that escapes everything is logged, and tsxend runs on", async () => {
    // A bug stand-in, preloaded: on SIGUSR2 an exception and a rejection nothing handles.
    const bug =
      'data:text/javascript,process.on("SIGUSR2",()=>{Promise.reject(new Error("an unheard rejection"));throw new Error("an uncaught exception")})';
    const t = await daemon(join(work, "state-head"), [], ["--import", bug]);
    await create(t, join(EXAMPLES, "counter.cfg"), "counter7", ["vmid=7"]);
    const r = spawnSync(
      "bash",
      [
        "-c",
        `"${process.execPath}" "${CLI}" xm --daemon 127.0.0.1:${t.port} --token ${t.token} console counter7 | head -3; echo "xm exit \${PIPESTATUS[0]}" >&2`,
      ],
      { encoding: "utf8", timeout: 20000 },
    );
    assert.equal(r.stdout.split("\n").length, 4, r.stdout);
    assert.match(r.stdout, /^counter: starting/);
    assert.equal(r.stderr, "xm exit 0\n");
    await counting(t, "counter7");
    // The process-level net: both are logged, and tsxend and its domain run on.
    t.proc.kill("SIGUSR2");
    await until("the log to tell", async () => /an unheard rejection/.test(t.log));
    assert.match(t.log, /internal error \(tsxend runs on\): Error: an uncaught exception/);
    assert.match(t.log, /internal error \(tsxend runs on\): Error: an unheard rejection/);
    assert.equal(await t.status("/info"), 200);
    await t.stop("SIGKILL");
  });

  it("the next start removes temporary images a killed tsxend left, and nothing else", async () => {
    const state = join(work, "state-journal");
    mkdirSync(join(state, "writes"), { recursive: true });
    const dir = join(work, "elsewhere");
    mkdirSync(dir);
    // A process that is gone: its pid owns the journal entries below.
    const dead = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
    const pid = Number(dead.stdout.trim());
    writeFileSync(join(dir, `.x.save.tmp-${pid}-17`), "partial");
    writeFileSync(join(dir, "precious"), "keep me");
    writeFileSync(join(state, "writes", `${pid}-0`), join(dir, `.x.save.tmp-${pid}-17`));
    writeFileSync(join(state, "writes", `${pid}-1`), join(dir, "precious"));
    // A live process's entry is its write in progress: left alone.
    writeFileSync(join(dir, `.y.save.tmp-${process.pid}-1`), "being written");
    writeFileSync(join(state, "writes", `${process.pid}-9`), join(dir, `.y.save.tmp-${process.pid}-1`));
    const t = await daemon(state);
    assert.deepEqual(readdirSync(dir).sort(), [`.y.save.tmp-${process.pid}-1`, "precious"]);
    assert.deepEqual(readdirSync(join(state, "writes")), [`${process.pid}-9`]);
    assert.match(
      t.log,
      new RegExp(`removed ${dir}/\\.x\\.save\\.tmp-${pid}-17, left by a tsxend killed mid-write`),
    );
    // A save whose rename fails (the target is a directory) removes its own temporary file.
    await create(t, config, "big");
    const target = join(dir, "adir");
    mkdirSync(join(target, "inside"), { recursive: true });
    const text = await (await t.fetch("POST", "/domains/big/save", { path: target })).text();
    assert.match(text, /cannot write .*adir.*; the domain keeps running/);
    assert.deepEqual(leftovers(dir), [`.y.save.tmp-${process.pid}-1`]);
    await counting(t, "big");
    await t.stop("SIGKILL");
  });

  it(`SIGKILL at random points of xm save and restore: a complete image or none, and no leftovers (seed ${SEED})`, async () => {
    const r = rng(SEED);
    const state = join(work, "state-save");
    const dir = join(work, "saves");
    mkdirSync(dir);
    const seen = { complete: 0, none: 0, leftover: 0 };
    for (let round = 0; round < 3; round++) {
      let t = await daemon(state);
      await create(t, config, "big");
      const path = join(dir, `big-${round}.save`);
      // About 35 progress lines. -1: killed as the request goes out; the last round is killed
      // once the save has answered, so that a restore is killed too.
      const lines = round === 2 ? Number.POSITIVE_INFINITY : r(40) - 1;
      await killAfter(t, "/domains/big/save", { path }, lines);
      if (leftovers(dir).length > 0) seen.leftover++;
      if (existsSync(path)) {
        seen.complete++;
        assert.doesNotThrow(
          () => decodeImage(new Uint8Array(readFileSync(path))),
          `seed ${SEED} round ${round}`,
        );
      } else seen.none++;
      t = await daemon(state);
      assert.deepEqual(leftovers(dir), [], `seed ${SEED} round ${round}: ${t.log}`);
      assert.deepEqual(readdirSync(join(state, "writes")), []);
      if (existsSync(path)) {
        // Restore, killed at a random point too: the image is read only, never changed.
        const sum = createHash("sha256").update(readFileSync(path)).digest("hex");
        await killAfter(t, "/restore", { path }, r(40) - 1);
        assert.equal(createHash("sha256").update(readFileSync(path)).digest("hex"), sum);
        t = await daemon(state);
        const done = await (await t.fetch("POST", "/restore", { path })).text();
        assert.match(done, /"ok":true/, done);
        await counting(t, "big");
      }
      await t.stop("SIGKILL");
    }
    process.stderr.write(`# crash-consistency (save, seed ${SEED}): ${JSON.stringify(seen)}\n`);
  });

  it(`SIGKILL of either end at random points of xm migrate: the domain is whole on one side (seed ${SEED})`, async () => {
    const r = rng(SEED + 1);
    for (let round = 0; round < 4; round++) {
      const a = await daemon(join(work, `state-mig-a${round}`));
      const b = await daemon(join(work, `state-mig-b${round}`));
      await create(a, config, "big");
      const live = round % 2 === 1;
      const body = { to: `127.0.0.1:${b.port}`, token: b.token, live };
      const lines = r(live ? 6 : 40) - 1;
      if (round < 2) {
        // The source dies: over there the domain runs whole, or is not there at all.
        await killAfter(a, "/domains/big/migrate", body, lines);
        const there = await b.status("/domains/big");
        if (there === 200) await counting(b, "big");
        else assert.equal(there, 404, `seed ${SEED} round ${round}`);
        assert.ok(Array.isArray((await b.json("GET", "/domains")).domains));
      } else {
        // The destination dies: the domain runs on here (or, if it got there whole, is gone here).
        const res = a.fetch("POST", "/domains/big/migrate", body).then((x) => x.text());
        await new Promise((ok) => setTimeout(ok, r(400)));
        await b.stop("SIGKILL");
        const answer = await res;
        if (/"ok":true/.test(answer)) assert.equal(await a.status("/domains/big"), 404);
        else {
          assert.match(answer, /it keeps running here/, `seed ${SEED} round ${round}`);
          assert.doesNotMatch(String((await a.json("GET", "/domains/big")).state), /p/);
          await counting(a, "big");
        }
        assert.equal(await a.status("/info"), 200);
      }
      for (const t of [a, b])
        if (t.proc.exitCode === null && t.proc.signalCode === null) await t.stop("SIGKILL");
    }
  });
});

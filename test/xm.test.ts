/**
 * The toolstack end to end: a real tsxend on an ephemeral loopback port, driven only through
 * `tsxen xm` (the built CLI, as a user runs it), then stopped with SIGTERM.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
// The daemon here and the xm that talks to it share a state directory of this test's (its
// token file), as a user's share ~/.local/state/tsxen.
const STATE_DIR = mkdtempSync(join(tmpdir(), "tsxen-xm-state-"));
process.env.TSXEN_STATE_DIR = STATE_DIR;
process.on("exit", () => rmSync(STATE_DIR, { recursive: true, force: true }));
const GUESTS = fileURLToPath(new URL("../../guests", import.meta.url));

/** Builds just the counter guest (the other guests are test/guests.test.ts's business). */
function counterGuest(): string {
  execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf"], { stdio: ["ignore", "pipe", "pipe"] });
  return join(GUESTS, "build", "ev_counter.elf");
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let daemon: ChildProcess | undefined;
let port = 0;
let dir = "";

function xm(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, "xm", "--daemon", `127.0.0.1:${port}`, ...args],
      { cwd: dir, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await xm(...args);
  assert.equal(r.code, 0, `xm ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** Rows of xm list by name: [id, mem, cpu, state, time, abi]. */
async function list(): Promise<Map<string, string[]>> {
  const out = await ok("list");
  const lines = out.trimEnd().split("\n");
  assert.match(lines[0], /^Name\s+Id\s+Mem\(MB\)\s+CPU\s+State\s+Time\(s\)\s+ABI$/);
  return new Map(
    lines.slice(1).map((l) => {
      const f = l.trim().split(/\s+/);
      return [f[0], f.slice(1)];
    }),
  );
}

/** The console so far, read the way a user would: attach, wait, detach with Ctrl-]. */
function consoleText(dom: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, "xm", "--daemon", `127.0.0.1:${port}`, "console", dom], {
      cwd: dir,
    });
    let out = "";
    let detached = false;
    const timer = setTimeout(() => {
      p.kill();
      reject(new Error(`console of ${dom} never showed ${until}: ${out.slice(-300)}`));
    }, 20_000);
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString("latin1");
      if (!detached && until.test(out)) {
        detached = true;
        p.stdin.write("\x1d");
      }
    });
    p.on("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`xm console exited with ${code}`));
      else resolve(out);
    });
  });
}

function counts(text: string): number[] {
  return [...text.matchAll(/^counter: (\d+)$/gm)].map((m) => Number(m[1]));
}

function config(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tsxen-xm-"));
  const kernel = counterGuest();
  config(
    "counter.cfg",
    `# a counter guest, named from vmid as in xmexample2\nkernel = "${kernel}"\nmemory = 16\nname = "counter%d" % vmid\non_crash = 'destroy'\n`,
  );
  config("other.cfg", `kernel = "${kernel}"\nmemory = 8\nname = "other"\ncpu = 0\nextra = "hello"\n`);
  const d = spawn(process.execPath, [CLI, "daemon", "--port", "0", "--machine-memory", "128"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  daemon = d;
  port = await new Promise<number>((resolve, reject) => {
    let out = "";
    d.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    d.on("exit", (code) => reject(new Error(`tsxend exited early (${code})`)));
  });
});

after(() => {
  if (daemon !== undefined && daemon.exitCode === null) daemon.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("tsxen xm against a running tsxend", () => {
  it("creates two domains from configuration files and lists them with the manual's columns", async () => {
    const a = await xm("create", "counter.cfg", "vmid=1");
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /Started domain counter1 \(id \d+\)/);
    assert.equal((await xm("create", "other.cfg")).code, 0);
    const rows = await list();
    assert.deepEqual([...rows.keys()], ["Domain-0", "counter1", "other"]);
    assert.equal(rows.get("counter1")?.[1], "16");
    assert.equal(rows.get("other")?.[1], "8");
    assert.match(rows.get("counter1")?.[3] ?? "", /^[r-][b-]----$/);
  });

  it('creates a July 2005 domain (abi = "2005-07") beside the March ones; xm list shows each revision', async () => {
    execFileSync("make", ["-s", "-C", GUESTS, "ABI=jul", "build/jul/ev_counter.elf"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const jul = join(GUESTS, "build", "jul", "ev_counter.elf");
    config("jul.cfg", `kernel = "${jul}"\nmemory = 8\nname = "julctr"\nabi = "2005-07"\nextra = "noctrl"\n`);
    const r = await xm("create", "jul.cfg");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Started domain julctr \(id \d+\)/);
    const rows = await list();
    assert.equal(rows.get("julctr")?.[5], "2005-07");
    assert.equal(rows.get("counter1")?.[5], "2005-03");
    assert.equal(rows.get("other")?.[5], "2005-03");
    // Both revisions run side by side: the July counter counts while the March ones do.
    const text = await consoleText("julctr", /counter: 3\n/);
    assert.doesNotMatch(text, /FAIL/);
    assert.equal((await xm("destroy", "julctr")).code, 0);
    assert.ok(!(await list()).has("julctr"));
  });

  it("refuses a second domain with the same name", async () => {
    const r = await xm("create", "counter.cfg", "vmid=1");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^xm: a domain named "counter1" already exists \(id \d+\)/);
  });

  it("names the file and line of a malformed configuration", async () => {
    config("bad.cfg", `kernel = "x"\nmemory = 16\nname "oops"\n`);
    const r = await xm("create", "bad.cfg");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.cfg:3:6: expected "=" after "name"/);
    config("bad2.cfg", `kernel = "x"\nmemory = "lots"\n`);
    const r2 = await xm("create", "bad2.cfg");
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /bad2\.cfg:2: memory must be a whole number/);
    const r3 = await xm("create", "missing.cfg");
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /cannot read missing\.cfg: no such file/);
  });

  it("says which domains exist when asked for an unknown one", async () => {
    for (const cmd of [
      ["pause", "nosuch"],
      ["destroy", "42"],
      ["console", "nosuch"],
      ["save", "nosuch", "x.img"],
      ["domid", "nosuch"],
    ]) {
      const r = await xm(...cmd);
      assert.equal(r.code, 1, cmd.join(" "));
      assert.match(
        r.stderr,
        /no domain "(nosuch|42)"; domains: counter1 \(\d+\), other \(\d+\)/,
        cmd.join(" "),
      );
    }
  });

  it("pauses and unpauses (state p), and maps names to ids and back", async () => {
    await ok("pause", "other");
    assert.equal((await list()).get("other")?.[3], "--p---");
    await ok("unpause", "other");
    assert.match(
      (await list()).get("other")?.[3] ?? "(no row)",
      /^[r-][b-]----$/,
      "unpaused: listed, state without p",
    );
    const id = (await ok("domid", "other")).trim();
    assert.match(id, /^\d+$/);
    assert.equal((await ok("domname", id)).trim(), "other");
  });

  it("lists a domain in full: -l in xend's SXP, --json for scripts", async () => {
    const sxp = await ok("list", "-l", "other");
    assert.match(sxp, /^\(domain\n {4}\(id \d+\)\n {4}\(name other\)\n {4}\(memory 8\)\n {4}\(maxmem 8\)\n/);
    assert.match(sxp, /\n {4}\(abi 2005-03\)\n/);
    assert.match(sxp, /\(config\n {8}\(vm\n {12}\(name other\)\n {12}\(memory 8\)/);
    assert.match(sxp, /\(image \(linux \(kernel \/\S+\/ev_counter\.elf\) \(args hello\)\)\)/);
    assert.equal(sxp.match(/^\(domain$/gm)?.length, 1);
    const json = JSON.parse(await ok("list", "--json", "other")) as { name: string; cmdline: string }[];
    assert.deepEqual(
      json.map((d) => [d.name, d.cmdline]),
      [["other", "hello"]],
    );
  });

  it("attaches to a console and detaches with Ctrl-]", async () => {
    const text = await consoleText("counter1", /counter: 3\n/);
    assert.match(text, /counter: starting/);
    assert.deepEqual(counts(text).slice(0, 3), [1, 2, 3]);
  });

  it("saves a domain to a file and restores it: the counter carries on where it stopped", async () => {
    await consoleText("counter1", /counter: 5\n/);
    const s = await xm("save", "counter1", "counter1.img");
    assert.equal(s.code, 0, s.stderr);
    assert.ok(!(await list()).has("counter1"), "a saved domain is stopped");
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes(".tmp")),
      [],
      "no temporary file is left behind",
    );
    const r = await xm("restore", "counter1.img");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Restored domain counter1 \(id \d+\)/);
    const text = await consoleText("counter1", /counter: (1[5-9]|[2-9]\d)\n/);
    const n = counts(text);
    assert.deepEqual(
      n,
      Array.from({ length: n.length }, (_, i) => i + 1),
      "one count after another, no restart, no gap",
    );
    assert.doesNotMatch(text, /FAIL/);
    assert.equal(text.match(/counter: starting/g)?.length, 1, "the guest did not boot again");
  });

  it("refuses a truncated image and a file that is not an image", async () => {
    const img = readFileSync(join(dir, "counter1.img"));
    writeFileSync(join(dir, "short.img"), img.subarray(0, img.length - 5000));
    await ok("destroy", "counter1");
    const r = await xm("restore", "short.img");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the save image is truncated/);
    writeFileSync(join(dir, "junk.img"), "hello");
    const j = await xm("restore", "junk.img");
    assert.equal(j.code, 1);
    assert.match(j.stderr, /not a tsxen save image/);
    assert.ok(!(await list()).has("counter1"), "nothing was left half-restored");
  });

  it("shows the host, the hypervisor's messages, and sets scheduling and memory parameters", async () => {
    assert.match(await ok("info"), /nr_cpus\s+: 1/);
    assert.match(await ok("dmesg"), /\(XEN\) tsxen hypervisor: 128 MiB/);
    await ok("sched-bvt", "other", "20", "0", "0", "0", "0");
    await ok("sched-bvt-ctxallow", "5000000");
    await ok("pincpu", "other", "0");
    assert.match((await xm("pincpu", "other", "3")).stderr, /CPU 3 does not exist/);
    await ok("mem-max", "other", "16");
    // The counter has no balloon driver: the target is recorded, and xm says the guest did not take it.
    assert.match(
      (await xm("mem-set", "other", "12")).stderr,
      /answered the memory request without taking it/,
    );
    assert.match((await xm("mem-set", "other", "64")).stderr, /above the domain's maximum of 16 MiB/);
  });

  it("shuts a domain down and waits for it (-w); destroy removes another", async () => {
    await ok("create", "counter.cfg", "vmid=2");
    await ok("shutdown", "-w", "other");
    await ok("destroy", "counter2");
    assert.deepEqual([...(await list()).keys()], ["Domain-0"]);
  });

  it("reboots a guest through its control interface: built again under the same name", async () => {
    await ok("create", "counter.cfg", "vmid=4", "on_reboot='restart'");
    const before = (await list()).get("counter4")?.[0];
    await consoleText("counter4", /counter: 2\n/);
    await ok("reboot", "counter4");
    let after: string | undefined;
    for (let i = 0; i < 100 && (after === undefined || after === before); i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await list()).get("counter4")?.[0];
    }
    assert.ok(after !== undefined && after !== before, `counter4 came back with a new id (was ${before})`);
    assert.match(await consoleText("counter4", /counter: 1\n/), /counter: starting/);
    await ok("destroy", "counter4");
  });

  it("reports a guest that does not answer a shutdown request; destroy stops it", async () => {
    await ok("create", "counter.cfg", "vmid=5", 'extra="noctrl"');
    const r = await xm("shutdown", "-t", "1", "counter5");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /did not answer the poweroff request within 1 s.*xm destroy stops it/);
    assert.ok((await list()).has("counter5"), "it still runs");
    await ok("destroy", "counter5");
    assert.ok(!(await list()).has("counter5"));
  });

  it("names a --daemon that is not an address", async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, "xm", "--daemon", "ftp://x", "list"], (err, _o, stderr) =>
        resolve({ code: err === null ? 0 : Number(err.code), stderr }),
      );
    });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /--daemon: "ftp:\/\/x" is not a port, host, host:port or http:\/\/ URL of a tsxend/,
    );
  });

  it("stops cleanly on SIGTERM", async () => {
    await ok("create", "counter.cfg", "vmid=3");
    const code = await new Promise<number | null>((resolve) => {
      daemon?.on("exit", (c) => resolve(c));
      daemon?.kill("SIGTERM");
    });
    assert.equal(code, 0);
    const r = await xm("list");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach tsxend/);
  });
});

/**
 * The README's Toolstack section, command by command: its `npx tsxen xm ...` lines are run
 * exactly as written (against a daemon of our own), from a directory that holds the
 * repository's examples/ and guests/ as the README's reader would.
 */
describe("the README's toolstack walk-through", () => {
  const ROOT = fileURLToPath(new URL("../../", import.meta.url));
  let walkDaemon: ChildProcess | undefined;
  let walkPort = 0;
  let walkDir = "";
  // A state directory of its own: its daemon runs beside the other one.
  const walkEnv = { ...process.env, TSXEN_STATE_DIR: mkdtempSync(join(tmpdir(), "tsxen-readme-state-")) };

  function readmeCommands(): string[][] {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Toolstack"), readme.indexOf("## Layout"));
    return [...section.matchAll(/^npx tsxen xm (.+?)(?:\s+#.*)?$/gm)].map((m) => m[1].trim().split(/\s+/));
  }

  function walkXm(args: string[], stdin?: string): Promise<Result> {
    return new Promise((resolve) => {
      const p = spawn(process.execPath, [CLI, "xm", "--daemon", `127.0.0.1:${walkPort}`, ...args], {
        cwd: walkDir,
        env: walkEnv,
      });
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d: Buffer) => {
        stdout += d.toString("latin1");
      });
      p.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      // xm console: detach with Ctrl-] once something was shown (or after 3 s).
      if (stdin !== undefined) {
        const detach = setTimeout(() => p.stdin.write(stdin), 3000);
        p.stdout.once("data", () => setTimeout(() => p.stdin.write(stdin), 1500));
        p.on("exit", () => clearTimeout(detach));
      }
      const kill = setTimeout(() => p.kill(), 30_000);
      p.on("exit", (code) => {
        clearTimeout(kill);
        resolve({ code: code ?? 1, stdout, stderr });
      });
    });
  }

  before(async () => {
    counterGuest();
    walkDir = mkdtempSync(join(tmpdir(), "tsxen-readme-"));
    symlinkSync(join(ROOT, "examples"), join(walkDir, "examples"));
    symlinkSync(join(ROOT, "guests"), join(walkDir, "guests"));
    const d = spawn(process.execPath, [CLI, "daemon", "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: walkEnv,
    });
    walkDaemon = d;
    walkPort = await new Promise<number>((resolve, reject) => {
      let out = "";
      d.stdout?.on("data", (b: Buffer) => {
        out += b.toString();
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      d.on("exit", (code) => reject(new Error(`tsxend exited early (${code})`)));
    });
  });

  after(() => {
    if (walkDaemon !== undefined && walkDaemon.exitCode === null) walkDaemon.kill("SIGTERM");
    rmSync(walkDir, { recursive: true, force: true });
    rmSync(walkEnv.TSXEN_STATE_DIR, { recursive: true, force: true });
  });

  it("runs every xm command of the README in order, each doing what the README says", async () => {
    const cmds = readmeCommands();
    assert.deepEqual(
      cmds.map((c) => c[0]),
      [
        "create",
        "create",
        "list",
        "console",
        "console",
        "pause",
        "list",
        "unpause",
        "save",
        "restore",
        "console",
        "shutdown",
        "destroy",
        "list",
      ],
      "the README's sequence (update this test with it)",
    );
    const outs: string[] = [];
    for (const args of cmds) {
      const r = await walkXm(args, args[0] === "console" ? "\x1d" : undefined);
      assert.equal(r.code, 0, `xm ${args.join(" ")} failed: ${r.stderr}`);
      outs.push(r.stdout);
    }
    const [c1, c2, l1, con1, con2, , l2, , , rest, con3, , , l3] = outs;
    assert.match(c1, /^Started domain counter1 \(id \d+\)/);
    assert.match(c2, /^Started domain hello \(id \d+\)/);
    assert.match(l1, /^Name\s+Id\s+Mem\(MB\)\s+CPU\s+State\s+Time\(s\)\s+ABI\n/);
    assert.match(l1, /\ncounter1\s+\d+\s+16\s+0\s+[r-][b-]----/);
    assert.match(l1, /\nhello\s+\d+\s+8\s+0\s+/);
    assert.match(con1, /counter: 1\n/);
    assert.match(con2, /Hello from tsxen![\s\S]*cmdline="greeting from a config file"[\s\S]*hello: goodbye/);
    assert.match(l2, /\ncounter1\s+\d+\s+16\s+0\s+--p---/);
    assert.match(rest, /^Restored domain counter1 \(id \d+\)/);
    const n = counts(con3);
    assert.ok(n.length > 0 && n[0] === 1, "the restored console keeps the history from the start");
    assert.deepEqual(
      n,
      Array.from({ length: n.length }, (_, i) => i + 1),
      "no restart, no gap",
    );
    assert.deepEqual(
      l3
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
      ["Domain-0"],
    );
    assert.ok(readdirSync(walkDir).includes("counter1.img"));
  });
});

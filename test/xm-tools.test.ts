/**
 * The xm commands people reach for beyond the 2005 manual's, and tsxend's log, end to end: a
 * real `tsxen daemon` (spawned, with --log) and `tsxen xm` run as a user runs them (issue 15).
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CONSOLE_RING_SIZE } from "../src/public/dom0_ops.js";
import { startDaemon } from "./helpers/daemon.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const GUESTS = join(ROOT, "guests");
const dir = mkdtempSync(join(tmpdir(), "tsxen-xmtools-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, TSXEN_STATE_DIR: join(dir, "state") };

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs tsxen with args; stdin is /dev/null unless given. */
function tsxen(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; stdin?: "ignore" | "pipe" } = {},
): Promise<Result> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      cwd: dir,
      env: opts.env ?? env,
      stdio: [opts.stdin ?? "ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stdout?.on("data", (d: Buffer) => (stdout += d.toString("latin1")));
    p.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const kill = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.on("exit", (code) => {
      clearTimeout(kill);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

interface Daemon {
  proc: ChildProcess;
  port: number;
  stderr: () => string;
}

function startCliDaemon(args: string[], stateDir: string): Promise<Daemon> {
  const d = spawn(process.execPath, [CLI, "daemon", "--port", "0", "--machine-memory", "128", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TSXEN_STATE_DIR: stateDir },
  });
  let err = "";
  d.stderr.on("data", (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    let out = "";
    d.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ proc: d, port: Number(m[1]), stderr: () => err });
    });
    d.on("exit", (code) => reject(new Error(`tsxend exited early (${code}): ${err}`)));
  });
}

let main: Daemon;
const LOG = join(dir, "main.log");

function xm(...args: string[]): Promise<Result> {
  return tsxen(["xm", "--daemon", `127.0.0.1:${main.port}`, ...args]);
}

async function ok(...args: string[]): Promise<string> {
  const r = await xm(...args);
  assert.equal(r.code, 0, `xm ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

async function ids(): Promise<Map<string, { id: number; state: string }>> {
  const rows = JSON.parse(await ok("list", "--json")) as { id: number; name: string; state: string }[];
  return new Map(rows.map((r) => [r.name, { id: r.id, state: r.state }]));
}

/** Polls the console history (GET .../console through xm list's daemon) until it matches. */
async function waitConsole(dom: string, re: RegExp): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const r = await tsxen(["xm", "--daemon", `127.0.0.1:${main.port}`, "console", dom]);
    if (re.test(r.stdout)) return r.stdout;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`the console of ${dom} never showed ${re}`);
}

const STAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /;

before(async () => {
  execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf"], { stdio: ["ignore", "pipe", "pipe"] });
  const kernel = join(GUESTS, "build", "ev_counter.elf");
  writeFileSync(join(dir, "counter.cfg"), `kernel = "${kernel}"\nmemory = 8\nname = "ctr%d" % vmid\n`);
  writeFileSync(join(dir, "spin.cfg"), `kernel = "${kernel}"\nmemory = 8\nname = "spin"\nextra = "spin"\n`);
  main = await startCliDaemon(["--log", LOG], env.TSXEN_STATE_DIR);
});

after(() => {
  if (main?.proc.exitCode === null) main.proc.kill("SIGKILL");
});

describe("tsxend's log", () => {
  it("is stamped lines on stderr and in --log FILE, which xm log shows; save, restore and migrate are named", async () => {
    await ok("create", "counter.cfg", "vmid=1");
    await waitConsole("ctr1", /counter: 2\n/);
    const save = await xm("save", "ctr1", "ctr1.img");
    assert.equal(save.code, 0, save.stderr);
    // Not a terminal: the progress is plain lines, the last at 100%.
    const progress = save.stderr.trimEnd().split("\n");
    assert.ok(progress.length >= 2, save.stderr);
    for (const l of progress) assert.match(l, /^Saving ctr1 to ctr1\.img: saving \d+% [\d.]+\/[\d.]+ MiB$/);
    assert.match(progress.at(-1) ?? "", /: saving 100% /);
    assert.doesNotMatch(save.stderr, /\r/);
    assert.equal((await xm("restore", "ctr1.img")).code, 0);
    // A second tsxend with the default log file (tsxend.log in its state directory).
    const otherState = join(dir, "other-state");
    const other = await startCliDaemon([], otherState);
    try {
      const id = (await ids()).get("ctr1")?.id;
      const mig = await xm(
        "migrate",
        "ctr1",
        `127.0.0.1:${other.port}`,
        "--dest-token",
        readFileSync(join(otherState, "token"), "utf8").trim(),
      );
      assert.equal(mig.code, 0, mig.stderr);
      const log = await ok("log");
      const lines = log.trimEnd().split("\n");
      for (const l of lines) assert.match(l, STAMP, l);
      const said = lines.map((l) => l.replace(STAMP, ""));
      assert.ok(said.includes("domain 1 (ctr1) created"), log);
      assert.ok(said.includes(`domain 1 (ctr1) saved to ${join(dir, "ctr1.img")}`), log);
      assert.ok(said.includes(`domain ${id} (ctr1) restored from ${join(dir, "ctr1.img")}`), log);
      assert.ok(said.includes(`domain ${id} (ctr1) migrated to http://127.0.0.1:${other.port}`), log);
      assert.equal(said.filter((l) => /destroyed/.test(l)).length, 0, "nothing was destroyed");
      // The same lines went to the file and, stamped, to stderr.
      assert.equal(readFileSync(LOG, "utf8"), log);
      assert.ok(main.stderr().includes(lines[0]), main.stderr());
      const otherLog = readFileSync(join(otherState, "tsxend.log"), "utf8");
      assert.match(
        otherLog,
        /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} domain \d+ \(ctr1\) arrived by migration$/m,
      );
    } finally {
      other.proc.kill("SIGKILL");
    }
  });
});

describe("xm top, uptime, sysrq", () => {
  it("top -b -n 2: a spinning domain's CPU % above a paused one's 0.0; memory as xm list says", async () => {
    await ok("create", "spin.cfg");
    await ok("create", "counter.cfg", "vmid=2");
    await ok("pause", "ctr2");
    const r = await xm("top", "-b", "-n", "2", "-d", "0.5");
    assert.equal(r.code, 0, r.stderr);
    const screens = r.stdout.split("\n\n");
    assert.equal(screens.length, 2, r.stdout);
    for (const line of r.stdout.split("\n")) assert.ok(line.length <= 80, `too wide: ${line}`);
    const last = screens[1].trimEnd().split("\n");
    assert.match(last[0], /^tsxen top - \d\d:\d\d:\d\d {3}Xen 3\.0-devel$/);
    assert.match(last[1], /^\d+ domains: \d+ running, \d+ blocked, 1 paused, /);
    assert.match(
      last[3],
      /^\s+NAME\s+ID\s+STATE\s+CPU\(sec\)\s+CPU\(%\)\s+MEM\(k\)\s+MEM\(%\)\s+MAXMEM\(k\) ABI$/,
    );
    const row = (name: string): string[] => {
      const l = last.find((x) => x.trim().startsWith(`${name} `));
      assert.ok(l, `no row for ${name}: ${screens[1]}`);
      return l.trim().split(/\s+/);
    };
    const spin = row("spin");
    const paused = row("ctr2");
    assert.equal(paused[2], "--p---");
    assert.equal(paused[4], "0.0");
    assert.ok(Number(spin[4]) > 1, `spin's CPU(%) ${spin[4]}`);
    assert.equal(spin[5], String(8 * 1024));
    assert.equal(spin[6], ((8 * 100) / 128).toFixed(1));
    assert.equal(spin[8], "2005-03");
    const bad = await xm("top", "-b", "-n", "0");
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'xm: -n must be a positive whole number, not "0"\n');
  });

  it("uptime: H:MM:SS for each domain, the older ones longer", async () => {
    const out = await ok("uptime");
    const lines = out.trimEnd().split("\n");
    assert.match(lines[0], /^Name\s+ID Uptime$/);
    const up = new Map(
      lines.slice(1).map((l) => {
        const m = /^(\S+)\s+(\d+) (\d+):(\d\d):(\d\d)$/.exec(l);
        assert.ok(m, l);
        return [m[1], Number(m[3]) * 3600 + Number(m[4]) * 60 + Number(m[5])];
      }),
    );
    // ctr1 has migrated away.
    assert.deepEqual([...up.keys()], ["Domain-0", "spin", "ctr2"]);
    assert.ok((up.get("Domain-0") ?? -1) >= (up.get("spin") ?? 1e9));
    assert.ok((up.get("spin") ?? -1) >= (up.get("ctr2") ?? 1e9));
    const one = await ok("uptime", "spin");
    assert.equal(one.trimEnd().split("\n").length, 2);
    const none = await xm("uptime", "nosuch");
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no domain "nosuch"/);
  });

  it("sysrq: the key reaches the guest in CMSG_SHUTDOWN_SYSRQ; bad keys and stopped domains are refused", async () => {
    await ok("unpause", "ctr2");
    await ok("sysrq", "ctr2", "t");
    await waitConsole("ctr2", /counter: sysrq t\n/);
    const two = await xm("sysrq", "ctr2", "ab");
    assert.equal(two.code, 1);
    assert.equal(two.stderr, 'xm: a sysrq key is one printable character, not "ab"\n');
  });
});

describe("xm create -n, shutdown -a -w -R -H, console", () => {
  it("create -n prints the parsed configuration in SXP and creates nothing", async () => {
    const before = [...(await ids()).keys()];
    const r = await xm("create", "-n", "counter.cfg", "vmid=7", "extra='x y'");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `(vm\n    (name ctr7)\n    (memory 8)\n    (cpu -1)\n    (vcpus 1)\n    (abi 2005-03)\n    (on_poweroff destroy)\n    (on_reboot restart)\n    (on_crash destroy)\n    (image (linux (kernel ${join(GUESTS, "build", "ev_counter.elf")}) (args 'x y')))\n)\n`,
    );
    assert.deepEqual([...(await ids()).keys()], before);
    writeFileSync(join(dir, "bad.cfg"), 'kernel = "k"\nmemory = "lots"\n');
    const bad = await xm("create", "-n", "bad.cfg");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad\.cfg:2: memory must be a whole number/);
  });

  it("shutdown -R reboots (a new id, same name), -a -w stops every domain; contradictions are refused", async () => {
    const both = await xm("shutdown", "-R", "-H", "spin");
    assert.equal(both.stderr, "xm: -R (reboot) and -H (halt) ask for opposite things\n");
    const which = await xm("shutdown");
    assert.equal(which.stderr, "xm: which domain? (name one, or -a for all)\n");
    const allAndOne = await xm("shutdown", "-a", "spin");
    assert.equal(allAndOne.stderr, "xm: -a means every domain: name none with it\n");
    const old = (await ids()).get("ctr2")?.id;
    await ok("shutdown", "-R", "-w", "ctr2");
    const now = (await ids()).get("ctr2")?.id;
    assert.ok(now !== undefined && now !== old, `ctr2 was ${old}, is ${now}`);
    await ok("shutdown", "-a", "-w", "-H");
    assert.deepEqual([...(await ids()).keys()], ["Domain-0"]);
  });

  it("console: a stopped domain's says so and ends; the end of stdin detaches from a running one", async () => {
    writeFileSync(
      join(dir, "hello.cfg"),
      `kernel = "${join(GUESTS, "hello.elf")}"\nmemory = 8\nname = "hello"\non_poweroff = "preserve"\n`,
    );
    await ok("create", "hello.cfg");
    for (let i = 0; i < 100 && (await ids()).get("hello")?.state.includes("s") !== true; i++)
      await new Promise((r) => setTimeout(r, 100));
    const c = await xm("console", "hello");
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /hello: goodbye/);
    assert.match(c.stderr, /\[domain \d+ \(hello\) has stopped: poweroff\]/);
    // stdin is /dev/null: xm shows what there is and detaches, rather than waiting forever.
    await ok("create", "counter.cfg", "vmid=3");
    await waitConsole("ctr3", /counter: 1\n/);
    const r = await xm("console", "ctr3");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^counter: starting[\s\S]*counter: 1\n/);
    await ok("destroy", "ctr3");
    await ok("destroy", "hello");
  });
});

describe("the README's promises", () => {
  it("git ignores the images the README's commands write", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const images = [...readme.matchAll(/^npx tsxen xm save \S+ (\S+)/gm)].map((m) => m[1]);
    assert.ok(images.length > 0, "the README saves an image");
    for (const f of images) execFileSync("git", ["-C", ROOT, "check-ignore", "-q", f]);
  });

  it("a July 2005 domain saves and restores with xm, and counts on as July", async () => {
    execFileSync("make", ["-s", "-C", GUESTS, "ABI=jul", "build/jul/ev_counter.elf"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    writeFileSync(
      join(dir, "jul.cfg"),
      `kernel = "${join(GUESTS, "build", "jul", "ev_counter.elf")}"\nmemory = 8\nname = "jul"\nabi = "2005-07"\nextra = "noctrl"\n`,
    );
    await ok("create", "jul.cfg");
    await waitConsole("jul", /counter: 3\n/);
    const save = await xm("save", "jul", "jul.img");
    assert.equal(save.code, 0, save.stderr);
    assert.equal((await ids()).has("jul"), false);
    const r = await xm("restore", "jul.img");
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(await ok("list", "--json", "jul")) as { abi: string }[];
    assert.equal(rows[0].abi, "2005-07");
    const text = await waitConsole("jul", /counter: (1[0-9]|[2-9]\d)\n/);
    const n = [...text.matchAll(/^counter: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      n,
      Array.from({ length: n.length }, (_, i) => i + 1),
      "no restart, no gap",
    );
    assert.doesNotMatch(text, /FAIL/);
    assert.equal(text.match(/counter: starting/g)?.length, 1);
    await ok("destroy", "jul");
  });
});

describe("xm dmesg", () => {
  it("shows Xen's whole console ring, which stops recording once full, as Xen's did; -c empties it", async () => {
    const { daemon, port, stateDir } = await startDaemon();
    try {
      const run = (...args: string[]): Promise<Result> =>
        tsxen(["xm", "--daemon", `127.0.0.1:${port}`, ...args], {
          env: { ...process.env, TSXEN_STATE_DIR: stateDir },
        });
      for (let i = 0; daemon.hv.consoleRing.len < CONSOLE_RING_SIZE; i++)
        daemon.hv.log(`message ${i} of a hypervisor that has much to say`);
      daemon.hv.log("said after the ring filled up");
      const full = await run("dmesg");
      assert.equal(full.code, 0);
      assert.equal(full.stdout.length, CONSOLE_RING_SIZE);
      assert.equal(
        full.stdout,
        Buffer.from(daemon.hv.consoleRing.read(CONSOLE_RING_SIZE)).toString("latin1"),
      );
      assert.match(
        full.stdout,
        /^\(XEN\) Xen version 3\.0-devel \(tsxen\)\n\(XEN\) tsxen hypervisor: 128 MiB/,
      );
      assert.doesNotMatch(full.stdout, /after the ring filled up/);
      assert.equal(
        full.stderr,
        `xm: Xen's console ring is full (${CONSOLE_RING_SIZE} bytes): later messages were not kept; xm dmesg -c clears it\n`,
      );
      assert.equal((await run("dmesg", "-c")).stdout.length, CONSOLE_RING_SIZE);
      daemon.hv.log("a fresh start");
      const after = await run("dmesg");
      assert.equal(after.stdout, "(XEN) a fresh start\n");
      assert.equal(after.stderr, "");
    } finally {
      await daemon.close();
    }
  });
});

describe("tsxen's own: --version, completion, help", () => {
  it("--version names the package's version and Xen 3.0-devel, which xm info and the hello guest agree with", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const v = await tsxen(["--version"]);
    assert.equal(v.code, 0);
    assert.match(v.stdout, new RegExp(`^tsxen ${pkg.version.replace(/\./g, "\\.")}: Xen 3\\.0-devel `));
    assert.match(await ok("info"), /^xen_version\s+: 3\.0-devel$/m);
    const hello = await tsxen(["run", join(GUESTS, "hello.elf")]);
    assert.match(hello.stdout, /Xen 3\.0 interface/, "the number the hypercall gives, 3.0 of 3.0-devel");
  });

  it("completion bash completes commands, options and the daemon's domain names", async () => {
    await ok("create", "counter.cfg", "vmid=5");
    const script = join(dir, "completion.bash");
    const gen = await tsxen(["completion", "bash"]);
    assert.equal(gen.code, 0, gen.stderr);
    writeFileSync(script, gen.stdout);
    const complete = (...words: string[]): string[] => {
      const out = execFileSync(
        "bash",
        [
          "-c",
          `source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tsxen; printf '%s\\n' "\${COMPREPLY[@]}"`,
          script,
          ...words,
        ],
        { env, encoding: "utf8" },
      );
      return out.split("\n").filter(Boolean).sort();
    };
    assert.deepEqual(complete("tsxen", "xm", "sh"), ["shutdown"]);
    assert.deepEqual(complete("tsxen", "d"), ["daemon"]);
    assert.ok(complete("tsxen", "xm", "").includes("top"));
    assert.deepEqual(complete("tsxen", "xm", "shutdown", "--"), [
      "--all",
      "--halt",
      "--help",
      "--reboot",
      "--timeout",
      "--version",
      "--wait",
    ]);
    assert.deepEqual(complete("tsxen", "xm", "--daemon", `127.0.0.1:${main.port}`, "console", "ct"), [
      "ctr5",
    ]);
    assert.deepEqual(complete("tsxen", "xm", "--daemon", `127.0.0.1:${main.port}`, "pause", ""), [
      "Domain-0",
      "ctr5",
    ]);
    await ok("destroy", "ctr5");
  });

  it("every help screen fits 80 columns", async () => {
    const screens: string[][] = [
      ["--help"],
      ["xm", "help"],
      ["daemon", "--help"],
      ["run", "--help"],
      ["web", "--help"],
    ];
    const xmHelp = (await tsxen(["xm", "help"])).stdout;
    const section = xmHelp.slice(xmHelp.indexOf("Commands:"));
    for (const m of section.matchAll(/^ {2}([a-z][\w-]*)/gm)) screens.push(["xm", m[1], "--help"]);
    assert.ok(screens.length > 30, "every xm command's help");
    // Four at a time: the machine is shared.
    for (let i = 0; i < screens.length; i += 4)
      await Promise.all(
        screens.slice(i, i + 4).map(async (args) => {
          const r = await tsxen(args);
          assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
          for (const line of r.stdout.split("\n"))
            assert.ok(line.length <= 80, `tsxen ${args.join(" ")}: ${line.length} columns: ${line}`);
        }),
      );
  });
});

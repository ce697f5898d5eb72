/**
 * The browser build: web/machine.ts bundled for the browser (esbuild fails on any Node.js
 * module) runs in a bare JavaScript context — no process, no require, no Buffer, no timers —
 * and boots the bundled hello guest; the page's bundle builds too.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runInNewContext } from "node:vm";
import { bundleForBrowser } from "../scripts/build-web.js";
import { serveWeb } from "../src/cli/web.js";

const HELLO = new URL("../../guests/hello.elf", import.meta.url);
const GUESTS = fileURLToPath(new URL("../../guests", import.meta.url));

interface Machine {
  domainId: number;
  retired: number;
  guestNs: number;
  runUntil(ns: number): { ok: boolean; text: string } | null;
  input(bytes: Uint8Array): void;
}
interface WebModule {
  WebMachine: new (opts: object) => Machine;
}

/** The bundle in a context of its own, which has only ECMAScript's globals (and TextEncoder/Decoder, as a page has). */
async function loadBundle(): Promise<{ web: WebModule; bytes: (b: Uint8Array) => Uint8Array }> {
  const code = await bundleForBrowser("web/machine.ts", { globalName: "tsxenWeb" });
  const sandbox = { TextEncoder, TextDecoder };
  const web = runInNewContext(`${code};tsxenWeb`, sandbox, { filename: "tsxen-web.js" }) as WebModule;
  // Byte arrays from the sandbox's own realm, as a page's File.arrayBuffer() gives.
  const U8 = runInNewContext("Uint8Array", sandbox) as typeof Uint8Array;
  return { web, bytes: (b) => U8.from(b) };
}

test("the browser bundle boots the hello guest with nothing of Node.js around it", async () => {
  const { web, bytes } = await loadBundle();
  const out: number[] = [];
  const logs: string[] = [];
  const m = new web.WebMachine({
    image: bytes(readFileSync(HELLO)),
    name: "hello",
    memoryMiB: 32,
    machineMemoryMiB: 128,
    cmdline: "",
    abi: "2005-03",
    onConsole: (b: Uint8Array) => out.push(...b),
    onLog: (l: string) => logs.push(l),
  });
  let ending = null;
  for (let i = 0; i < 500 && ending === null; i++) ending = m.runUntil(m.guestNs + 10e6);
  const text = String.fromCharCode(...out);
  assert.match(text, /Hello from tsxen!/);
  assert.match(text, /hello: goodbye/);
  // (An object of the sandbox's realm: compared field by field.)
  assert.equal(ending?.text, `domain ${m.domainId} shut down: poweroff`);
  assert.equal(ending?.ok, true);
  assert.ok(m.retired > 0);
});

test("keyboard input reaches the guest's CONSOLEIO_read in the browser bundle", async () => {
  execFileSync("make", ["-s", "-C", GUESTS, "build/ev_console_echo.elf"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { web, bytes } = await loadBundle();
  const out: number[] = [];
  const m = new web.WebMachine({
    image: bytes(readFileSync(join(GUESTS, "build", "ev_console_echo.elf"))),
    name: "echo",
    memoryMiB: 16,
    machineMemoryMiB: 128,
    cmdline: "",
    abi: "2005-03",
    onConsole: (b: Uint8Array) => out.push(...b),
    onLog: () => {},
  });
  m.input(bytes(new TextEncoder().encode("typed in the page\n")));
  let ending = null;
  for (let i = 0; i < 500 && ending === null; i++) ending = m.runUntil(m.guestNs + 10e6);
  const text = String.fromCharCode(...out);
  assert.match(text, /^echo: typed in the page$/m);
  assert.match(text, /DONE passed=1 failed=0/);
});

test("the browser bundle refuses a bad kernel with a sentence, not a crash", async () => {
  const { web, bytes } = await loadBundle();
  const opts = { name: "x", memoryMiB: 32, machineMemoryMiB: 128, cmdline: "", onConsole() {}, onLog() {} };
  assert.throws(
    () => new web.WebMachine({ ...opts, image: bytes(new Uint8Array(64)), abi: "2005-03" }),
    /ELF/,
  );
  assert.throws(
    () => new web.WebMachine({ ...opts, image: bytes(readFileSync(HELLO)), abi: "1999-01" }),
    /interface revision must be one of 2005-03, 2005-07/,
  );
});

test("the page's bundle (web/main.ts with xterm.js) builds for the browser", async () => {
  const code = await bundleForBrowser("web/main.ts");
  assert.ok(code.length > 10_000);
  assert.doesNotMatch(code, /from\s*"node:|require\("node:/);
});

test("tsxen web serves the build's own files only, and says when the build is missing", async () => {
  await assert.rejects(
    serveWeb(0, "127.0.0.1", mkdtempSync(join(tmpdir(), "tsxen-empty-"))),
    /npm run build:web/,
  );
  const dir = mkdtempSync(join(tmpdir(), "tsxen-web-"));
  for (const f of ["index.html", "tsxen.js", "xterm.css", "hello.elf"])
    writeFileSync(join(dir, f), `file ${f}`);
  writeFileSync(join(dir, "secret.txt"), "not served");
  const server = await serveWeb(0, "127.0.0.1", dir);
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const index = await fetch(`${base}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(await index.text(), "file index.html");
    const js = await fetch(`${base}/tsxen.js`);
    assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal((await fetch(`${base}/secret.txt`)).status, 404);
    assert.equal((await fetch(`${base}/..%2fsecret.txt`)).status, 404);
    assert.equal((await fetch(`${base}/`, { method: "POST" })).status, 405);
  } finally {
    server.close();
  }
});

/**
 * The README's first command on a fresh clone: `npx tsxen run` after `npm ci`. npm exec links the
 * package that owns the bin into its own cache and runs its `prepare` there; that used to be a
 * second full build (25-30 s, silent). scripts/prepare.mjs skips the build when dist/ is current.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Written by scripts/prepare.mjs after each build it makes. */
const STAMP = join(ROOT, "dist/.prepared");
const stampTime = () => (existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0);

/** The command after `npm ci &&` in the README's Quick start. */
function readmeMainCommand(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const quick = readme.slice(readme.indexOf("## Quick start"));
  const m = /^npm ci && (npx tsxen [^#\n]*?)\s*(#|$)/m.exec(quick);
  assert.ok(m, "the Quick start names `npm ci && <command>`");
  return m[1];
}

/** Whether dist/ was prepared after its inputs changed (as `npm ci` leaves it). */
function prepareIsCurrent(): boolean {
  const r = spawnSync(process.execPath, [join(ROOT, "scripts/prepare.mjs"), "--check"], { encoding: "utf8" });
  return r.status === 0;
}

describe("the first command", () => {
  it("runs the README's main command as written: the hello guest boots, nothing is rebuilt", (t) => {
    const command = readmeMainCommand();
    assert.equal(command, "npx tsxen run");
    const env = { ...process.env };
    let cache: string | undefined;
    if (prepareIsCurrent()) {
      // An empty npm cache is what a fresh clone meets: npx links this checkout and prepares it.
      cache = mkdtempSync(join(tmpdir(), "tsxen-npx-"));
      Object.assign(env, { npm_config_cache: cache, npm_config_offline: "true" });
    } else {
      t.diagnostic("dist/ is older than its sources: npx's own cache is used (no fresh-clone prepare)");
    }
    const before = stampTime();
    const start = Date.now();
    const r = spawnSync("sh", ["-c", command], { cwd: ROOT, env, encoding: "utf8", timeout: 120_000 });
    t.diagnostic(`${command}: ${Date.now() - start} ms`);
    if (cache) rmSync(cache, { recursive: true, force: true });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Hello from tsxen! /);
    assert.match(r.stdout, /hello: goodbye\n$/);
    assert.equal(stampTime(), before, "the command rebuilt dist/");
  });

  it("prepare builds when an input is newer than its last build, and only then", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsxen-prepare-"));
    try {
      mkdirSync(join(dir, "scripts"));
      mkdirSync(join(dir, "src"));
      copyFileSync(join(ROOT, "scripts/prepare.mjs"), join(dir, "scripts/prepare.mjs"));
      const build = "node -e \"fs.mkdirSync('dist',{recursive:true});fs.appendFileSync('builds','b')\"";
      writeFileSync(
        join(dir, "package.json"),
        JSON.stringify({ name: "p", scripts: { "build:web": build } }),
      );
      writeFileSync(join(dir, "src/a.ts"), "export {};\n");
      const prepare = () => {
        const r = spawnSync(process.execPath, ["scripts/prepare.mjs"], { cwd: dir, encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
      };
      const builds = () =>
        existsSync(join(dir, "builds")) ? readFileSync(join(dir, "builds"), "utf8").length : 0;
      prepare();
      assert.equal(builds(), 1);
      assert.match(prepare(), /tsxen: dist\/ is up to date/);
      assert.equal(builds(), 1);
      const later = new Date(Date.now() + 5000);
      utimesSync(join(dir, "src/a.ts"), later, later);
      prepare();
      assert.equal(builds(), 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

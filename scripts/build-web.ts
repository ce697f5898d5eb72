/**
 * Builds the browser version of tsxen into dist/web/: web/main.ts (guests in the page) and
 * web/dashboard.ts (tsxend's dashboard) bundled for the browser (esbuild; a Node.js module
 * pulled in by mistake fails the build), their pages, xterm.js's stylesheet and the bundled
 * hello guest.
 *
 *   npm run build:web        (also run by npm's prepare, so npm ci leaves it built)
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** The repository root (this file is dist/scripts/build-web.js or scripts/build-web.ts). */
const ROOT = resolve(
  dirname(fileURLToPath(import.meta.url)),
  fileURLToPath(import.meta.url).includes("/dist/") ? "../.." : "..",
);

/**
 * Bundles entry (a path under the repository) for the browser; returns the JavaScript: an ES
 * module, or with globalName a script that assigns the module's exports to that global.
 */
export async function bundleForBrowser(entry: string, opts: { globalName?: string } = {}): Promise<string> {
  const r = await build({
    entryPoints: [join(ROOT, entry)],
    bundle: true,
    format: opts.globalName === undefined ? "esm" : "iife",
    globalName: opts.globalName,
    platform: "browser",
    target: "es2022",
    minify: true,
    write: false,
    logLevel: "silent",
  });
  return r.outputFiles[0].text;
}

export async function buildWeb(out = join(ROOT, "dist", "web")): Promise<string> {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "tsxen.js"), await bundleForBrowser("web/main.ts"));
  writeFileSync(join(out, "dashboard.js"), await bundleForBrowser("web/dashboard.ts"));
  for (const page of ["index.html", "dashboard.html"]) copyFileSync(join(ROOT, "web", page), join(out, page));
  const require = createRequire(import.meta.url);
  copyFileSync(require.resolve("@xterm/xterm/css/xterm.css"), join(out, "xterm.css"));
  copyFileSync(join(ROOT, "guests", "hello.elf"), join(out, "hello.elf"));
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildWeb().then(
    (out) => process.stdout.write(`built ${out}\n`),
    (e: Error) => {
      process.stderr.write(`build-web: ${e.message}\n`);
      process.exit(1);
    },
  );
}

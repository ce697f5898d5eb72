// npm's `prepare`: builds dist/ (tsc, then the browser bundle) unless it is newer than every input.
// npm runs `prepare` at `npm ci`, and again the first time `npx tsxen` runs in a clone: npm exec
// links the package that owns the bin into its cache and prepares it there, a second full build
// of 25-30 s with its output hidden. The stamp makes that second run a no-op.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const STAMP = join(ROOT, "dist", ".prepared");
const INPUTS = [
  "package.json",
  "package-lock.json",
  "tsconfig.json",
  "src",
  "test",
  "bench",
  "scripts",
  "web",
  "guests/hello.elf",
];

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

const inputsMtime = Math.max(
  ...INPUTS.map((p) => join(ROOT, p))
    .filter(existsSync)
    .map(newestMtime),
);
const current = existsSync(STAMP) && statSync(STAMP).mtimeMs >= inputsMtime;
if (process.argv.includes("--check")) {
  // For the tests: exit status 0 when dist/ is current.
  process.exitCode = current ? 0 : 1;
} else if (current) {
  console.log("tsxen: dist/ is up to date (npm run build:web rebuilds it)");
} else {
  execFileSync("npm", ["run", "build:web"], { cwd: ROOT, stdio: "inherit" });
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
}

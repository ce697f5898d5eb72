// Builds the project's own PV guest kernels (guests/, C + asm) once per test process.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let builtDir: string | undefined;

/** The repository root: the nearest ancestor of this file that holds guests/Makefile. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "guests", "Makefile"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`guests/Makefile not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/**
 * Runs `make -C guests` (once per process) and returns the build directory holding
 * hello.elf and conf_<name>.elf. Throws with make's output if the build fails.
 */
export function buildGuests(): string {
  if (builtDir !== undefined) return builtDir;
  const guests = join(repoRoot(), "guests");
  try {
    execFileSync("make", ["-s", "-C", guests], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`make -C ${guests} failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
  builtDir = join(guests, "build");
  return builtDir;
}

/** Path of one built guest, e.g. guestPath("hello") or guestPath("conf_xen_version"). */
export function guestPath(name: string): string {
  return join(buildGuests(), `${name}.elf`);
}

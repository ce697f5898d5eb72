/**
 * tsxend's token and where it lives: a file in tsxend's state directory that only its user
 * can read (as Jupyter keeps its runtime files), made at the first start. The daemon requires
 * it on every API call, loopback included; xm reads the same file for a daemon on this
 * machine, so nobody has to copy it by hand.
 */
import { randomBytes } from "node:crypto";
import { linkSync, lstatSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** tsxend's state directory: $TSXEN_STATE_DIR, else $XDG_STATE_HOME/tsxen, else ~/.local/state/tsxen. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TSXEN_STATE_DIR) return env.TSXEN_STATE_DIR;
  return join(env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "tsxen");
}

/** The token file of a state directory. */
export function tokenFile(stateDir: string): string {
  return join(stateDir, "token");
}

/** A token goes into an HTTP header: printable ASCII without spaces. */
const TOKEN_TEXT = /^[\x21-\x7e]+$/;

/**
 * The token in a token file, checked as ssh checks a private key: a regular file of this
 * user that nobody else can read or write. Throws an Error naming the file and the problem.
 */
export function readTokenFile(path: string): string {
  const st = lstatSync(path);
  if (!st.isFile()) throw new Error(`${path} is not a regular file`);
  if (process.platform !== "win32") {
    if (process.getuid !== undefined && st.uid !== process.getuid())
      throw new Error(`${path} belongs to another user (uid ${st.uid})`);
    if ((st.mode & 0o077) !== 0)
      throw new Error(
        `${path} can be read or written by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it, or delete it and tsxend makes a new one`,
      );
  }
  const token = readFileSync(path, "utf8").trim();
  if (!TOKEN_TEXT.test(token))
    throw new Error(
      `${path} does not hold a token (one word of printable ASCII); delete it and tsxend makes a new one`,
    );
  return token;
}

/**
 * The state directory's token, made first when there is none: 32 random bytes in hex, in a
 * file of mode 0600 (the directory 0700). Made beside and linked into place, so a second
 * tsxend starting at the same moment reads a whole file and uses the same token.
 */
export function loadOrCreateToken(stateDir: string): string {
  const path = tokenFile(stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  } finally {
    unlinkSync(tmp);
  }
  return readTokenFile(path);
}

/** True for the names and addresses of this machine's loopback interface. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

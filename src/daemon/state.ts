/**
 * tsxend's state directory (xend's /var/lib/xend), locked by the daemon that keeps domains in
 * it (src/daemon/token.ts keeps the token there). It holds the journal of image files being written (writes/, so that a killed
 * daemon's partial images are removed at its next start) and the domains saved when it
 * stopped (domains/, restored at its next start, as Xen's xendomains script did).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanImageLeftovers, processAlive } from "../tools/save.js";

const IMAGE = /^(\d+)-(.+?)(\.paused)?\.save$/;

/** A domain saved when tsxend stopped, to be restored at its next start. */
export interface SavedDomain {
  path: string;
  name: string;
  paused: boolean;
}

export class StateDir {
  readonly writes: string;
  readonly domains: string;
  private readonly lockFile: string;
  private locked = false;

  constructor(readonly path: string) {
    this.writes = join(path, "writes");
    this.domains = join(path, "domains");
    this.lockFile = join(path, "tsxend.pid");
  }

  /** Creates the directory (only its owner may read it) and its parts. */
  create(): void {
    for (const d of [this.path, this.writes, this.domains]) mkdirSync(d, { recursive: true, mode: 0o700 });
  }

  /**
   * Takes the directory for this process: a second tsxend on it would restore the same
   * domains, so it is refused.
   */
  lock(): void {
    for (;;) {
      try {
        writeFileSync(this.lockFile, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
        this.locked = true;
        return;
      } catch (e) {
        if ((e as { code?: string }).code !== "EEXIST") throw e;
      }
      const pid = Number(readFileSync(this.lockFile, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid))
        throw new Error(`another tsxend (pid ${pid}) uses the state directory ${this.path}`);
      // Its owner is gone (killed): the lock is stale.
      rmSync(this.lockFile, { force: true });
    }
  }

  close(): void {
    if (this.locked) rmSync(this.lockFile, { force: true });
    this.locked = false;
  }

  /** Removes what a killed tsxend left: temporary images anywhere it wrote, and in domains/. */
  async cleanLeftovers(): Promise<string[]> {
    const removed = await cleanImageLeftovers(this.writes);
    for (const f of readdirSync(this.domains)) {
      if (!/^\..*\.tmp-\d+-\d+$/.test(f)) continue;
      unlinkSync(join(this.domains, f));
      removed.push(join(this.domains, f));
    }
    return removed;
  }

  /** Where a domain is saved on stop: its old id orders the restores. */
  imagePath(id: number, name: string, paused: boolean): string {
    return join(
      this.domains,
      `${String(id).padStart(5, "0")}-${encodeURIComponent(name)}${paused ? ".paused" : ""}.save`,
    );
  }

  /** The domains saved on stop, in the order they had been created. */
  saved(): SavedDomain[] {
    const out: (SavedDomain & { id: number })[] = [];
    for (const f of readdirSync(this.domains)) {
      const m = IMAGE.exec(f);
      if (m === null) continue;
      let name: string;
      try {
        name = decodeURIComponent(m[2]);
      } catch {
        name = m[2];
      }
      out.push({ path: join(this.domains, f), id: Number(m[1]), name, paused: m[3] !== undefined });
    }
    return out.sort((a, b) => a.id - b.id).map(({ id: _, ...d }) => d);
  }
}

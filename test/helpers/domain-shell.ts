/**
 * A shell on a domain's console under a tsxend in this process (the gated XenLinux suites):
 * type a command, wait (bounded) for a line it prints.
 */
import type { DomainManager } from "../../src/tools/domains.js";

/** Waits until check() holds, polling every 20 ms, at most ms; throws naming what. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms: number,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Whether no process has this id any more (a child we started has exited). */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

export class DomainShell {
  constructor(
    private readonly manager: DomainManager,
    readonly name: string,
  ) {}

  /** Everything the domain's console printed. */
  get console(): string {
    return Buffer.from(this.manager.consoleHistory(this.manager.find(this.name))).toString("latin1");
  }

  /**
   * Types cmd and waits for a whole line matching re (a regular expression's source; write the
   * command so its echo cannot match, e.g. `echo OK-$((1+1))` waiting for `OK-2`); returns
   * the console from where the command was typed. Throws with the console's tail on timeout.
   */
  async ask(cmd: string, re: string, ms = 120_000): Promise<string> {
    const from = this.console.length;
    const line = new RegExp(`^${re}\\r?$`, "m");
    this.manager.consoleInput(this.manager.find(this.name), Buffer.from(`${cmd}\n`));
    try {
      await until(`${re} after ${cmd}`, () => line.test(this.console.slice(from)), ms);
    } catch (e) {
      throw new Error(`${(e as Error).message}; console:\n${this.console.slice(-3000)}`);
    }
    return this.console.slice(from);
  }
}

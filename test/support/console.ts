// Machines whose guests' console output the test reads, and the check that a self-testing guest passed.
import assert from "node:assert/strict";
import { DomainManager } from "../../src/tools/domains.js";
import type { Domain } from "../../src/xen/domain.js";
import { Hypervisor } from "../../src/xen/hypervisor.js";

/** A machine that collects each domain's console output (latin1) in `out`. */
export function consoleMachine(
  memoryMiB = 64,
  scheduler?: string,
): { hv: Hypervisor; out: Map<Domain, string> } {
  const out = new Map<Domain, string>();
  const hv = new Hypervisor({
    memoryMiB,
    scheduler,
    onConsole: (d, b) => void out.set(d, (out.get(d) ?? "") + Buffer.from(b).toString("latin1")),
  });
  return { hv, out };
}

/**
 * A machine with dom0's domain manager (which serves the guests' control interfaces), collecting
 * each domain's console output by domain id in `text`.
 */
export function managedMachine(memoryMiB = 64): {
  hv: Hypervisor;
  manager: DomainManager;
  text: Map<number, string>;
} {
  const text = new Map<number, string>();
  let manager: DomainManager | undefined;
  const hv = new Hypervisor({
    memoryMiB,
    onConsole: (d, b) => {
      text.set(d.id, (text.get(d.id) ?? "") + Buffer.from(b).toString("latin1"));
      manager?.consoleOutput(d, b);
    },
  });
  manager = new DomainManager(hv);
  return { hv, manager, text };
}

/** A self-testing guest's console: no FAIL line, and DONE with failed=0. */
export function assertGuestPassed(text: string): void {
  assert.deepEqual(
    text.split("\n").filter((l) => l.startsWith("FAIL")),
    [],
    text,
  );
  assert.match(text, /DONE passed=\d+ failed=0/, text);
}

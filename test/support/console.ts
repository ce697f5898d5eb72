// Machines whose guests' console output the test reads, and the check that a self-testing guest passed.
import assert from "node:assert/strict";
import type { Domain } from "../../src/xen/domain.js";
import { Hypervisor } from "../../src/xen/hypervisor.js";

/** A machine that collects each domain's console output (latin1) in `out`. */
export function consoleMachine(memoryMiB = 64): { hv: Hypervisor; out: Map<Domain, string> } {
  const out = new Map<Domain, string>();
  const hv = new Hypervisor({
    memoryMiB,
    onConsole: (d, b) => void out.set(d, (out.get(d) ?? "") + Buffer.from(b).toString("latin1")),
  });
  return { hv, out };
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

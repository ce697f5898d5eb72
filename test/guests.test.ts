/**
 * Our own PV guests on the whole stack (CPU, hypervisor, builder): the hello demo boots and
 * powers off, and every conformance guest passes every check it prints.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor, type RunResult } from "../src/xen/hypervisor.js";
import { buildGuests, guestPath } from "./support/guests.js";

/** Boots a guest kernel and returns its console text and how the run ended. */
function boot(path: string, seconds = 5): { console: string; result: RunResult } {
  const chunks: Uint8Array[] = [];
  const hv = new Hypervisor({ memoryMiB: 64, onConsole: (_d, b) => void chunks.push(b.slice()) });
  launchDomain(hv, { name: "test", image: readFileSync(path), memoryMiB: 16 });
  const result = hv.run(seconds * 1e9);
  return { console: Buffer.concat(chunks).toString("latin1"), result };
}

describe("hello guest", () => {
  it("prints its console, takes a timer event and powers off", () => {
    const { console: out, result } = boot(guestPath("hello"));
    assert.equal(result.kind, "shutdown", out);
    assert.match(out, /^Hello from tsxen!/);
    assert.match(out, /timer event on port \d+ taken in the event callback/);
    assert.match(out, /goodbye/);
  });

  it("is deterministic: two runs print the same bytes", () => {
    assert.equal(boot(guestPath("hello")).console, boot(guestPath("hello")).console);
  });
});

describe("conformance guests", () => {
  const dir = buildGuests();
  const guests = readdirSync(dir)
    .filter((f) => f.startsWith("conf_") && f.endsWith(".elf"))
    .sort();
  it("exist", () => assert.ok(guests.length >= 10, `found ${guests.length}`));
  for (const g of guests) {
    it(g.replace(/\.elf$/, ""), () => {
      const { console: out, result } = boot(join(dir, g));
      const fails = out.split("\n").filter((l) => l.startsWith("FAIL"));
      assert.deepEqual(fails, [], out);
      assert.match(out, /DONE passed=\d+ failed=0/);
      assert.equal(result.kind, "shutdown", out);
    });
  }
});

/**
 * Our own PV guests on the whole stack (CPU, hypervisor, builder): the hello demo boots and
 * powers off, and every conformance guest passes every check it prints.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import type { AbiName } from "../src/xen/abi.js";
import { DomainState } from "../src/xen/domain.js";
import { Hypervisor, type RunResult } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { buildGuests, guestPath } from "./support/guests.js";

/**
 * Boots a guest kernel and returns its console text, how the run ended, and the first breach
 * of the memory invariants (semantics.md §1) found after any hypercall, or null.
 */
function boot(
  path: string,
  seconds = 5,
  abi: AbiName = "2005-03",
): { console: string; result: RunResult; invariants: string | null } {
  const chunks: Uint8Array[] = [];
  const hv = new Hypervisor({ memoryMiB: 64, onConsole: (_d, b) => void chunks.push(b.slice()) });
  let invariants: string | null = null;
  hv.afterHypercall = (_v, nr) => {
    if (invariants !== null) return;
    const bad = checkInvariants(hv);
    if (bad.length > 0) invariants = `after hypercall ${nr}: ${bad.slice(0, 5).join("; ")}`;
  };
  launchDomain(hv, { name: "test", image: readFileSync(path), memoryMiB: 16, abi });
  const result = hv.run(seconds * 1e9);
  return { console: Buffer.concat(chunks).toString("latin1"), result, invariants };
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

// The same C sources, compiled for each interface revision (guests/Makefile: build/ and
// build/jul/ with -DXEN_ABI_JUL), each run in a domain of that revision.
for (const { abi, sub } of [
  { abi: "2005-03" as AbiName, sub: "" },
  { abi: "2005-07" as AbiName, sub: "jul" },
]) {
  describe(`conformance guests (${abi})`, () => {
    const dir = join(buildGuests(), sub);
    const guests = readdirSync(dir)
      .filter((f) => f.startsWith("conf_") && f.endsWith(".elf"))
      .sort();
    it("exist", () => assert.ok(guests.length >= 10, `found ${guests.length}`));
    for (const g of guests) {
      it(g.replace(/\.elf$/, ""), () => {
        const { console: out, result, invariants } = boot(join(dir, g), 5, abi);
        assert.equal(invariants, null, "memory invariants hold after every hypercall");
        const fails = out.split("\n").filter((l) => l.startsWith("FAIL"));
        assert.deepEqual(fails, [], out);
        assert.match(out, /DONE passed=\d+ failed=0/);
        // A guest whose last act is meant to get it killed says so first: "EXPECT crash: <why>".
        const expectCrash = /^EXPECT crash: (.*)$/m.exec(out);
        if (expectCrash) {
          assert.equal(result.kind, "crashed", out);
          assert.match(result.kind === "crashed" ? result.why : "", new RegExp(expectCrash[1]), out);
        } else {
          assert.equal(result.kind, "shutdown", out);
        }
      });
    }
  });
}

describe("guests of both revisions side by side", () => {
  it("a March and a July conformance guest run in one machine and both pass", () => {
    const dir = buildGuests();
    const outs = new Map<number, Uint8Array[]>();
    const hv = new Hypervisor({
      memoryMiB: 64,
      onConsole: (d, b) => {
        const list = outs.get(d.id) ?? [];
        list.push(b.slice());
        outs.set(d.id, list);
      },
    });
    const mar = launchDomain(hv, {
      name: "mar",
      image: readFileSync(join(dir, "conf_sched_op.elf")),
      memoryMiB: 16,
    });
    const jul = launchDomain(hv, {
      name: "jul",
      image: readFileSync(join(dir, "jul", "conf_sched_op.elf")),
      memoryMiB: 16,
      abi: "2005-07",
    });
    assert.equal(mar.domain.abi.name, "2005-03");
    assert.equal(jul.domain.abi.name, "2005-07");
    // run() returns at the first domain to shut down; run again for the other.
    for (let i = 0; i < 2; i++) hv.run(10e9);
    for (const d of [mar.domain, jul.domain]) {
      const text = Buffer.concat(outs.get(d.id) ?? []).toString("latin1");
      assert.match(text, /DONE passed=\d+ failed=0/, `${d.name}: ${text}`);
      assert.equal(d.state, DomainState.Shutdown, `${d.name} powered off`);
    }
  });
});

describe("bundled demo guest", () => {
  it("guests/hello.elf is exactly what the sources build", () => {
    const built = readFileSync(guestPath("hello"));
    const bundled = readFileSync(new URL("../../guests/hello.elf", import.meta.url));
    assert.ok(
      Buffer.compare(built, bundled) === 0,
      "rebuild guests/hello.elf: cp guests/build/hello.elf guests/hello.elf",
    );
  });
});

/**
 * Hostile guests: random hypercalls with random arguments, and random machine code at ring 1.
 * Whatever a guest does, the hypervisor answers with an errno, a bounced fault or a clean
 * crash of that domain; an exception inside tsxen (reported as an "internal error" crash)
 * fails the test, and other domains keep running.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor, type RunResult } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { prng, writeElf32 } from "./helpers/elf32_writer.js";
import { guestPath } from "./support/guests.js";

function assertClean(r: RunResult, what: string): void {
  if (r.kind === "crashed") assert.doesNotMatch(r.why, /internal error/, `${what}: ${r.why}`);
}

describe("hostile guests", () => {
  it("random hypercalls get errors, never an internal error; every seed makes all its calls", () => {
    const image = readFileSync(guestPath("ev_hcfuzz"));
    const count = 1500;
    const total = { ok: 0, positive: 0, errors: 0, traps: 0 };
    for (let seed = 1; seed <= 30; seed++) {
      const hv = new Hypervisor({ memoryMiB: 32 });
      let violation: string | null = null;
      // Under TSXEN_CHECK_INVARIANTS the hypervisor checks after every hypercall itself (and
      // throws); checking twice would double the test's time.
      if (!hv.checkInvariantsAfterHypercall)
        hv.afterHypercall = (_v, nr) => {
          if (violation !== null) return;
          const bad = checkInvariants(hv);
          if (bad.length > 0) violation = `after hypercall ${nr}: ${bad.slice(0, 3).join("; ")}`;
        };
      const { domain } = launchDomain(hv, {
        name: `fuzz${seed}`,
        image,
        memoryMiB: 8,
        cmdline: `seed=${seed} count=${count}`,
      });
      const r = hv.run(2e9);
      assertClean(r, `seed ${seed}`);
      assert.equal(violation, null, `seed ${seed}: the frame table's invariants broke`);
      // The guest survives its own calls (hcfuzz.c): it makes every call and powers off.
      const text = Buffer.from(domain.consoleOut).toString("latin1");
      assert.equal(r.kind, "shutdown", `seed ${seed}: ${r.kind} ${"why" in r ? r.why : ""}`);
      assert.match(text, /hcfuzz: done\n/, `seed ${seed} did not finish`);
      assert.doesNotMatch(text, /FAIL/, `seed ${seed}`);
      const m = /hcfuzz: calls=(\d+) ok=(\d+) positive=(\d+) errors=(\d+) faulted=(\d+) traps=(\d+)/.exec(
        text,
      );
      assert.ok(m, `seed ${seed}: no outcome line`);
      const [calls, ok, positive, errors, faulted, traps] = m.slice(1).map(Number);
      assert.equal(calls, count, `seed ${seed}: calls made`);
      assert.equal(ok + positive + errors + faulted, calls, `seed ${seed}: every call has one outcome`);
      total.ok += ok;
      total.positive += positive;
      total.errors += errors;
      total.traps += traps;
    }
    // Each kind of outcome occurs: successes, counts, errnos and faults the guest took.
    for (const [what, n] of Object.entries(total)) assert.ok(n > 0, `no ${what} in 30 seeds`);
  });

  it("random machine code at ring 1 never throws out of the hypervisor", () => {
    const rnd = prng(0x5eed);
    for (let run = 0; run < 60; run++) {
      const code = Uint8Array.from({ length: 4096 }, () => Math.floor(rnd() * 256));
      const image = writeElf32({
        entry: 0xc0000000,
        segments: [{ vaddr: 0xc0000000, data: code }],
        xenGuest: "GUEST_OS=random,XEN_VER=3.0,LOADER=generic",
      });
      const hv = new Hypervisor({ memoryMiB: 16, tscHz: 10_000_000 });
      launchDomain(hv, { name: `random${run}`, image, memoryMiB: 4 });
      assertClean(hv.run(1e8), `run ${run}`);
    }
  });
});

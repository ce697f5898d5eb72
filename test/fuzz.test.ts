/**
 * Hostile guests: random hypercalls with random arguments, and random machine code at ring 1.
 * Whatever a guest does, the hypervisor answers with an errno, a bounced fault or a clean
 * crash of that domain; an exception inside tsxen (reported as an "internal error" crash)
 * fails the test, and other domains keep running: a victim beside the hypercall fuzzer, whose
 * domid and frames the fuzzer names, keeps every byte of its memory.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import { DomainState } from "../src/xen/domain.js";
import { Hypervisor, type RunResult } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { prng, writeElf32 } from "./helpers/elf32_writer.js";
import { guestPath } from "./support/guests.js";
import { memoryHash } from "./support/memory.js";

function assertClean(r: RunResult, what: string): void {
  if (r.kind === "crashed") assert.doesNotMatch(r.why, /internal error/, `${what}: ${r.why}`);
}

describe("hostile guests", () => {
  it("random hypercalls get errors, never an internal error; every seed makes all its calls", () => {
    const image = readFileSync(guestPath("ev_hcfuzz"));
    const victimImage = readFileSync(guestPath("hostile_victim"));
    const count = 1500;
    const seeds = 30;
    const total = { ok: 0, positive: 0, errors: 0, traps: 0 };
    const byNr = new Array<number>(34).fill(0);
    for (let seed = 1; seed <= seeds; seed++) {
      const hv = new Hypervisor({ memoryMiB: 32 });
      // The victim fills its memory and blocks for good; its frames are hashed around the fuzz.
      const victim = launchDomain(hv, { name: "victim", image: victimImage, memoryMiB: 4 }).domain;
      assert.equal(hv.run(2e9).kind, "idle", "the victim blocked for good");
      const vtext = Buffer.from(victim.consoleOut).toString("latin1");
      const vmfn = Number(/VICTIM ready .* mfn=(\d+)/.exec(vtext)?.[1]);
      assert.equal(hv.frames.owner[vmfn], victim.id, vtext);
      const before = memoryHash(hv, victim);
      const victimPages = victim.pages.size;
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
        cmdline: `seed=${seed} count=${count} vdom=${victim.id} vmfn=${vmfn}`,
      });
      const r = hv.run(hv.nowNs() + 2e9);
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
      const nrs = /hcfuzz: by_nr((?: \d+){34})\n/.exec(text)?.[1].trim().split(" ").map(Number) ?? [];
      assert.equal(nrs.length, 34, `seed ${seed}: no per-number line`);
      assert.equal(
        nrs.reduce((a, b) => a + b, 0),
        calls,
        `seed ${seed}: the per-number counts add up to the calls`,
      );
      // Every hypercall number (0..33: the 32 slots and two past them) is called in every run.
      for (const [nr, n] of nrs.entries()) {
        assert.ok(n > 0, `seed ${seed}: hypercall ${nr} never called`);
        byNr[nr] += n;
      }
      assert.equal(victim.state, DomainState.Running, `seed ${seed}: the victim is alive`);
      assert.equal(victim.pages.size, victimPages, `seed ${seed}: the victim keeps its frames`);
      assert.equal(memoryHash(hv, victim), before, `seed ${seed}: the victim's memory is unchanged`);
      total.ok += ok;
      total.positive += positive;
      total.errors += errors;
      total.traps += traps;
    }
    // Each kind of outcome occurs: successes, counts, errnos and faults the guest took.
    for (const [what, n] of Object.entries(total)) assert.ok(n > 0, `no ${what} in 30 seeds`);
    assert.equal(
      byNr.reduce((a, b) => a + b, 0),
      seeds * count,
    );
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

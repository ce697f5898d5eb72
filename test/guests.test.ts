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
  privileged = false,
): { console: string; result: RunResult; invariants: string | null } {
  const chunks: Uint8Array[] = [];
  const hv = new Hypervisor({ memoryMiB: 64, onConsole: (_d, b) => void chunks.push(b.slice()) });
  let invariants: string | null = null;
  hv.afterHypercall = (_v, nr) => {
    if (invariants !== null) return;
    const bad = checkInvariants(hv);
    if (bad.length > 0) invariants = `after hypercall ${nr}: ${bad.slice(0, 5).join("; ")}`;
  };
  launchDomain(hv, { name: "test", image: readFileSync(path), memoryMiB: 16, abi, privileged });
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

/** Checks each conformance guest runs (DONE passed=N), per revision: a skipped check fails. */
const CHECKS: Record<string, { "2005-03": number; "2005-07": number }> = {
  conf_console_io: { "2005-03": 12, "2005-07": 12 },
  conf_debugreg: { "2005-03": 106, "2005-07": 106 },
  conf_dom0_op_priv: { "2005-03": 22, "2005-07": 1 },
  conf_dom0_op_unpriv: { "2005-03": 17, "2005-07": 17 },
  conf_dom_mem_op: { "2005-03": 38, "2005-07": 38 },
  conf_event_channel_op: { "2005-03": 34, "2005-07": 34 },
  conf_evtchn_full: { "2005-03": 112, "2005-07": 124 },
  conf_failsafe: { "2005-03": 37, "2005-07": 37 },
  conf_fpu_taskswitch: { "2005-03": 51, "2005-07": 51 },
  conf_grant_table: { "2005-03": 77, "2005-07": 54 },
  conf_hypercall: { "2005-03": 63, "2005-07": 60 },
  conf_ldt: { "2005-03": 86, "2005-07": 82 },
  conf_mmu_update: { "2005-03": 123, "2005-07": 121 },
  conf_multicall: { "2005-03": 25, "2005-07": 25 },
  conf_physdev_pci_unpriv: { "2005-03": 39, "2005-07": 39 },
  conf_priv_emulation: { "2005-03": 256, "2005-07": 256 },
  conf_sched_op: { "2005-03": 14, "2005-07": 18 },
  conf_set_callbacks: { "2005-03": 26, "2005-07": 25 },
  conf_set_fast_trap: { "2005-03": 29, "2005-07": 5 },
  conf_set_gdt: { "2005-03": 90, "2005-07": 81 },
  conf_set_timer_op: { "2005-03": 18, "2005-07": 18 },
  conf_set_trap_table: { "2005-03": 84, "2005-07": 83 },
  conf_stack_switch: { "2005-03": 29, "2005-07": 29 },
  conf_timer_tick: { "2005-03": 15, "2005-07": 15 },
  conf_update_descriptor: { "2005-03": 70, "2005-07": 63 },
  conf_update_va_mapping: { "2005-03": 38, "2005-07": 37 },
  conf_vm_assist: { "2005-03": 39, "2005-07": 39 },
  conf_writable_pt: { "2005-03": 37, "2005-07": 37 },
  conf_xen_version: { "2005-03": 10, "2005-07": 15 },
};

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
    it("are exactly the guests whose check counts are pinned", () =>
      assert.deepEqual(
        guests.map((g) => g.replace(/\.elf$/, "")),
        Object.keys(CHECKS).sort(),
      ));
    for (const g of guests) {
      it(g.replace(/\.elf$/, ""), () => {
        // conf_*_priv guests judge what a privileged domain sees (SIF_PRIVILEGED).
        const { console: out, result, invariants } = boot(join(dir, g), 5, abi, /_priv\.elf$/.test(g));
        assert.equal(invariants, null, "memory invariants hold after every hypercall");
        const fails = out.split("\n").filter((l) => l.startsWith("FAIL"));
        assert.deepEqual(fails, [], out);
        assert.match(out, new RegExp(`DONE passed=${CHECKS[g.replace(/\.elf$/, "")]?.[abi]} failed=0`));
        // Every check has a name of its own: a duplicate hides which one ran.
        const names = [...out.matchAll(/^PASS (\S+)/gm)].map((m) => m[1]);
        assert.deepEqual(
          names.filter((n, i) => names.indexOf(n) !== i),
          [],
          "duplicate check names",
        );
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

// The victim domain beside an attacker: launched, run until it has filled its memory and
// blocked, and its frames hashed one by one so a test can name any frame that changed.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { launchDomain } from "../../src/tools/launch.js";
import type { Domain } from "../../src/xen/domain.js";
import type { Hypervisor } from "../../src/xen/hypervisor.js";
import { guestPath } from "./guests.js";

/** guests/hostile/victim.c in a 4 MiB domain, run until it is ready and blocked for good. */
export function launchVictim(m: { hv: Hypervisor; out: Map<Domain, string> }): Domain {
  const victim = launchDomain(m.hv, {
    name: "victim",
    image: readFileSync(guestPath("hostile_victim")),
    memoryMiB: 4,
  }).domain;
  assert.equal(m.hv.run(5e9).kind, "idle", "the victim blocked for good");
  assert.match(m.out.get(victim) ?? "", /VICTIM ready/);
  return victim;
}

/** Each of the frames' SHA-256, by frame number. */
export function frameHashes(hv: Hypervisor, mfns: Iterable<number>): Map<number, string> {
  const h = new Map<number, string>();
  for (const mfn of mfns)
    h.set(
      mfn,
      createHash("sha256")
        .update(hv.mem.bytes.subarray(mfn * 4096, (mfn + 1) * 4096))
        .digest("hex"),
    );
  return h;
}

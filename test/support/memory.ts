// A domain's memory as one hash, for tests that check a victim domain is left untouched.
import { createHash } from "node:crypto";
import type { Domain } from "../../src/xen/domain.js";
import type { Hypervisor } from "../../src/xen/hypervisor.js";

/** Every frame the domain owns, in frame order, as one SHA-256. */
export function memoryHash(hv: Hypervisor, d: Domain): string {
  const h = createHash("sha256");
  for (const mfn of [...d.pages].sort((a, b) => a - b))
    h.update(hv.mem.bytes.subarray(mfn * 4096, (mfn + 1) * 4096));
  return h.digest("hex");
}

/**
 * Creating and starting a domain from a kernel image: what xm create / xc_linux_build do,
 * done for the embedded `tsxen run` (the toolstack's dom0 path comes with the dom0 issue).
 */
import { Sif } from "../public/xen.js";
import type { Domain } from "../xen/domain.js";
import type { Hypervisor } from "../xen/hypervisor.js";
import { buildDomainImage, type DomainImage } from "./builder.js";

export interface LaunchOptions {
  name: string;
  image: Uint8Array;
  memoryMiB: number;
  cmdline?: string;
  module?: Uint8Array;
  /** A privileged (and physdev-capable) domain: start_info says SIF_PRIVILEGED. */
  privileged?: boolean;
}

/** Creates, builds and unpauses a domain; throws BuildError/ElfError/RangeError on bad input. */
export function launchDomain(hv: Hypervisor, opts: LaunchOptions): { domain: Domain; image: DomainImage } {
  if (!Number.isInteger(opts.memoryMiB) || opts.memoryMiB < 1) {
    throw new RangeError(`domain memory must be a whole number of MiB (at least 1), not ${opts.memoryMiB}`);
  }
  const d = hv.createDomain(opts.name, (opts.memoryMiB << 20) >>> 12, opts.privileged ?? false);
  const image = buildDomainImage({
    image: opts.image,
    mem: hv.mem.bytes,
    frames: [...d.pages],
    sharedInfoMfn: d.sharedInfoMfn,
    cmdline: opts.cmdline ?? "",
    flags: opts.privileged ? Sif.PRIVILEGED : 0,
    module: opts.module,
  });
  hv.cpu.invalidateCode(0, hv.mem.bytes.length);
  for (const [mfn, pfn] of image.m2p) hv.setM2p(mfn, pfn);
  const r = image.initialRegs;
  hv.startDomain(
    d,
    image.l2Mfn,
    { eip: r.eip, esp: r.esp, esi: r.esi, eflags: r.eflags },
    { ss: image.kernelSs, esp: image.kernelEsp },
  );
  return { domain: d, image };
}

/**
 * Creating and starting a domain from a kernel image: what xm create / xc_linux_build do, issued
 * by dom0 through dom0_op (abi.md §4.7): CREATEDOMAIN, GETMEMLIST for the p2m, the image built
 * into the new domain's frames, one mmu_update batch per 1024 requests [SET_FOREIGNDOM(domid),
 * MACHPHYS_UPDATE × pages, PIN_L2_TABLE], SETDOMAININFO with the initial context, UNPAUSEDOMAIN.
 */

import { FRAMES_PER_MIB, framesInMiB } from "../machine/memory.js";
import {
  MMU_UPDATE_CMD_MASK,
  MMUEXT_DOMID_SHIFT,
  MmuExtJul,
  MmuExtMar,
  MmuJul,
  MmuMar,
  Sif,
} from "../public/xen.js";
import { ABIS, type AbiName, DEFAULT_ABI } from "../xen/abi.js";
import type { Domain } from "../xen/domain.js";
import { setDomainAbi } from "../xen/domain_ctl.js";
import type { Hypervisor } from "../xen/hypervisor.js";
import { physdevInitDom0 } from "../xen/physdev.js";
import { buildDomainImage, type DomainImage } from "./builder.js";
import { bindControlChannel, ControlInterface } from "./control_if.js";
import { dom0Of } from "./dom0.js";
import {
  initialContext,
  isJulDom0,
  xcDomainCreate,
  xcDomainDestroy,
  xcDomainSetContext,
  xcDomainUnpause,
  xcGetMemList,
  xcIncreaseReservation,
  xcMmuextOp,
  xcMmuUpdate,
  xcSetMaxMem,
} from "./xc.js";

export interface LaunchOptions {
  name: string;
  image: Uint8Array;
  memoryMiB: number;
  cmdline?: string;
  module?: Uint8Array;
  /** A privileged (and physdev-capable) domain: start_info says SIF_PRIVILEGED. */
  privileged?: boolean;
  /** The guest interface revision: "2005-03" (default) or "2005-07". */
  abi?: AbiName;
  /** Physical CPU for its vcpu: -1 lets Xen place it (least loaded); default 0. */
  cpu?: number;
  /** Leave it paused after building (xm create -p). */
  paused?: boolean;
  /**
   * Bind the control interface's event channel from dom0 before building, as xcs did
   * (EVTCHNOP_bind_interdomain(DOMID_SELF, domid, 0, 1)); the guest finds its end in
   * start_info.domain_controller_evtchn and dom0's end is returned as controlPort (MAR only).
   */
  controlChannel?: boolean;
}

/** Requests per mmu_update call (each call re-establishes the foreign domain). */
const MMU_BATCH = 1024;

/** Creates, builds and unpauses a domain; throws BuildError/ElfError/RangeError/XcError on bad input. */
export function launchDomain(
  hv: Hypervisor,
  opts: LaunchOptions,
): { domain: Domain; image: DomainImage; controlPort?: number } {
  if (!Number.isInteger(opts.memoryMiB) || opts.memoryMiB < 1) {
    throw new RangeError(`domain memory must be a whole number of MiB (at least 1), not ${opts.memoryMiB}`);
  }
  const abi = opts.abi ?? DEFAULT_ABI;
  const nrPages = opts.memoryMiB * FRAMES_PER_MIB;
  // 8 frames stay back for the domain's own tables (shared info, page directory...).
  if (nrPages + 8 > hv.mem.freeFrames) {
    throw new RangeError(
      `not enough free machine memory for ${opts.memoryMiB} MiB: ${framesInMiB(hv.mem.freeFrames - 8)} MiB are free`,
    );
  }
  const dom0 = dom0Of(hv);
  // The build follows dom0's revision (abi.md §4.7): March creates with the memory; July
  // creates empty, raises max_pages and reserves the memory on the new domain's behalf.
  const jul = isJulDom0(dom0);
  const domid = xcDomainCreate(dom0, { memoryKb: jul ? 0 : opts.memoryMiB * 1024, cpu: opts.cpu ?? 0 });
  const d = hv.domains.get(domid);
  if (d === undefined) throw new Error(`domain ${domid} vanished after creation`);
  d.name = opts.name;
  try {
    // The guest's revision is the builder's to name (dom0_op has no field for it).
    if (setDomainAbi(hv, d, ABIS[abi]) !== 0) throw new Error(`domain ${domid} is already built`);
    if (jul) {
      xcSetMaxMem(dom0, domid, opts.memoryMiB * 1024);
      xcIncreaseReservation(dom0, domid, nrPages);
    }
    if (opts.privileged) {
      // A second privileged domain (tsxen's shortcut for a driver domain): IS_PRIV and every
      // PCI device, as dom0 has.
      d.privileged = true;
      physdevInitDom0(hv, d);
    }
    const [controlPort, controlEvtchn] = opts.controlChannel ? bindControlChannel(dom0, domid) : [];
    const frames = xcGetMemList(dom0, domid, nrPages);
    const image = buildDomainImage({
      image: opts.image,
      mem: hv.mem.bytes,
      frames,
      sharedInfoMfn: d.sharedInfoMfn,
      cmdline: opts.cmdline ?? "",
      flags: opts.privileged ? Sif.PRIVILEGED : 0,
      module: opts.module,
      abi,
      controlEvtchn,
    });
    hv.cpu.invalidateCode(0, hv.mem.bytes.length);
    if (jul) pinAndMapM2pJul(dom0, domid, image);
    else pinAndMapM2p(dom0, domid, image);
    const r = image.initialRegs;
    xcDomainSetContext(
      dom0,
      domid,
      0,
      initialContext({
        eip: r.eip,
        esp: r.esp,
        esi: r.esi,
        eflags: r.eflags,
        cs: r.cs,
        ds: r.ds,
        ss: r.ss,
        kernelSs: image.kernelSs,
        kernelEsp: image.kernelEsp,
        ptBase: image.cr3,
      }),
    );
    if (!opts.paused) xcDomainUnpause(dom0, domid);
    return { domain: d, image, controlPort };
  } catch (e) {
    xcDomainDestroy(dom0, domid);
    throw e;
  }
}

/** A domain started as xend started one: built, and its control interface connected. */
export interface StartedDomain {
  domain: Domain;
  image: DomainImage;
  /** The controller's end of its control interface; null for a July domain (it has none). */
  control: ControlInterface | null;
}

/**
 * launchDomain plus what xend did around it, for every toolstack here (`tsxen run`, the web
 * page, tsxend): a March domain gets its control channel and dom0 connects to its rings, with
 * the guest's CMSG_CONSOLE output going to onConsole (a 2005 XenLinux domU's console).
 */
export function startDomain(
  hv: Hypervisor,
  opts: Omit<LaunchOptions, "controlChannel">,
  onConsole: (bytes: Uint8Array) => void,
  onError: (why: string) => void,
): StartedDomain {
  const mar = (opts.abi ?? DEFAULT_ABI) === DEFAULT_ABI;
  const { domain, image, controlPort } = launchDomain(hv, { ...opts, controlChannel: mar });
  if (controlPort === undefined) return { domain, image, control: null };
  try {
    return {
      domain,
      image,
      control: new ControlInterface(dom0Of(hv), domain.id, controlPort, onConsole, onError),
    };
  } catch (e) {
    xcDomainDestroy(dom0Of(hv), domain.id);
    throw e;
  }
}

/** The build's mmu_update batches: M2P for every page, then the L2 pinned (abi.md §4.3). */
function pinAndMapM2p(dom0: ReturnType<typeof dom0Of>, domid: number, image: DomainImage): void {
  const fd: [number, number] = [
    MmuMar.EXTENDED_COMMAND,
    MmuExtMar.SET_FOREIGNDOM | (domid << MMUEXT_DOMID_SHIFT),
  ];
  const reqs: Array<[number, number]> = image.m2p.map(([mfn, pfn]) => [
    mfn * 4096 + MmuMar.MACHPHYS_UPDATE,
    pfn,
  ]);
  reqs.push([(image.cr3 & ~MMU_UPDATE_CMD_MASK) | MmuMar.EXTENDED_COMMAND, MmuExtMar.PIN_L2_TABLE]);
  for (let i = 0; i < reqs.length; i += MMU_BATCH) xcMmuUpdate(dom0, [fd, ...reqs.slice(i, i + MMU_BATCH)]);
}

/** The July build's batches: mmu_update with the foreign domain as argument, then mmuext_op pin. */
function pinAndMapM2pJul(dom0: ReturnType<typeof dom0Of>, domid: number, image: DomainImage): void {
  const reqs: Array<[number, number]> = image.m2p.map(([mfn, pfn]) => [
    mfn * 4096 + MmuJul.MACHPHYS_UPDATE,
    pfn,
  ]);
  for (let i = 0; i < reqs.length; i += MMU_BATCH) xcMmuUpdate(dom0, reqs.slice(i, i + MMU_BATCH), domid);
  xcMmuextOp(dom0, MmuExtJul.PIN_L2_TABLE, image.cr3 >>> 12, domid);
}

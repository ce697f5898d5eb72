/**
 * The domU builder (Xen's tools/libxc/xc_linux_build.c, MAR): lays a Xen PV kernel image out in
 * a new domain's memory and computes its initial VCPU state. abi.md §4.2–§4.5.
 *
 * It writes straight into machine memory through the domain's frame list (the p2m order), and
 * returns what the hypervisor must still do: set M2P[frames[k]] = k, validate and pin the L2
 * (installing Xen's slots 1008..1023), load CR3 and the initial registers.
 *
 * Everything ABI-specific comes from a `BootAbiProfile` built from src/public, so a later
 * revision (2005-07: 1068-byte start_info, xenstore page, ESP = start_info + 3 pages, 0xE0xx
 * selectors) is one more profile, not a change to the logic.
 */

import {
  BUILDER_L1_PROT,
  BUILDER_L1_PROT_RO,
  BUILDER_L2_PROT,
  HYPERVISOR_VIRT_START,
  INITIAL_EFLAGS_JUL,
  INITIAL_EFLAGS_MAR,
  L1_PAGETABLE_ENTRIES,
  L1_PAGETABLE_SHIFT,
  L2_PAGETABLE_SHIFT,
  PAGE_SHIFT,
  PAGE_SIZE,
  SelectorsJul,
  SelectorsMar,
} from "../public/arch_x86_32.js";
import {
  BootLayoutJul,
  BootLayoutMar,
  MAX_CMDLINE,
  MAX_GUEST_CMDLINE,
  MAX_VIRT_CPUS,
  SharedInfo,
  StartInfoJul,
  StartInfoMar,
  VcpuInfo,
} from "../public/xen.js";
import type { AbiName } from "../xen/abi.js";
import { ElfError, parseXenKernel, type XenGuestInfo, type XenKernelImage } from "./elf.js";

/** A problem building a domain: bad image, bad parameters, not enough memory. */
export class BuildError extends Error {
  override name = "BuildError";
}

/** Guest ABI revisions the builder knows (the hypervisor's interface revisions). */
export type BootAbiName = AbiName;

/** The numbers that differ between ABI revisions, all taken from src/public. */
export interface BootAbiProfile {
  readonly name: BootAbiName;
  readonly startInfo: {
    readonly nr_pages: number;
    readonly shared_info: number;
    readonly flags: number;
    readonly domain_controller_evtchn: number;
    readonly pt_base: number;
    readonly nr_pt_frames: number;
    readonly mfn_list: number;
    readonly mod_start: number;
    readonly mod_len: number;
    readonly cmd_line: number;
    /** JUL: VA of the xenstore page and its event channel. */
    readonly store_page?: number;
    readonly store_evtchn?: number;
    readonly SIZE: number;
  };
  /** Size of start_info.cmd_line; the builder NUL-terminates at MAX - 1. */
  readonly maxCmdline: number;
  readonly layout: {
    readonly PAGES_BETWEEN_START_INFO_AND_STACK: number;
    readonly STACK_PAGES: number;
    readonly STACK_TOP_OFFSET: number;
    readonly END_ALIGN: number;
    readonly MIN_END_PADDING: number;
    readonly MIN_PT_FRAMES: number;
    readonly MFN_LIST_ENTRY_SIZE: number;
  };
  readonly l2Prot: number;
  readonly l1Prot: number;
  readonly l1ProtReadOnly: number;
  readonly kernelCs: number;
  readonly kernelDs: number;
  readonly kernelSs: number;
  /** EFLAGS as the tools write it. */
  readonly initialEflags: number;
  /** First VA the guest may not map (Xen's L2 slots start here). */
  readonly hypervisorVirtStart: number;
  readonly sharedInfoSize: number;
  readonly sharedInfoNVcpu: number;
  readonly vcpuInfoSize: number;
  readonly vcpuInfoUpcallMask: number;
  readonly maxVcpus: number;
}

export const BOOT_ABIS: Readonly<Record<BootAbiName, BootAbiProfile>> = Object.freeze({
  "2005-03": Object.freeze({
    name: "2005-03",
    startInfo: StartInfoMar,
    maxCmdline: MAX_CMDLINE,
    layout: BootLayoutMar,
    l2Prot: BUILDER_L2_PROT,
    l1Prot: BUILDER_L1_PROT,
    l1ProtReadOnly: BUILDER_L1_PROT_RO,
    kernelCs: SelectorsMar.FLAT_KERNEL_CS,
    kernelDs: SelectorsMar.FLAT_KERNEL_DS,
    kernelSs: SelectorsMar.FLAT_KERNEL_SS,
    initialEflags: INITIAL_EFLAGS_MAR,
    hypervisorVirtStart: HYPERVISOR_VIRT_START,
    sharedInfoSize: SharedInfo.SIZE,
    sharedInfoNVcpu: SharedInfo.n_vcpu,
    vcpuInfoSize: VcpuInfo.SIZE,
    vcpuInfoUpcallMask: VcpuInfo.evtchn_upcall_mask,
    maxVcpus: MAX_VIRT_CPUS,
  }),
  // July 2005 (abi.md §2.6.2, §4.2, §4.5): 1068-byte start_info, a xenstore page between
  // start_info and the stack (ESP = start_info + 3 pages), 0xE0xx selectors, EFLAGS 0x200.
  "2005-07": Object.freeze({
    name: "2005-07",
    startInfo: StartInfoJul,
    maxCmdline: MAX_GUEST_CMDLINE,
    layout: BootLayoutJul,
    l2Prot: BUILDER_L2_PROT,
    l1Prot: BUILDER_L1_PROT,
    l1ProtReadOnly: BUILDER_L1_PROT_RO,
    kernelCs: SelectorsJul.FLAT_KERNEL_CS,
    kernelDs: SelectorsJul.FLAT_KERNEL_DS,
    kernelSs: SelectorsJul.FLAT_KERNEL_SS,
    initialEflags: INITIAL_EFLAGS_JUL,
    hypervisorVirtStart: HYPERVISOR_VIRT_START,
    sharedInfoSize: SharedInfo.SIZE,
    sharedInfoNVcpu: SharedInfo.n_vcpu,
    vcpuInfoSize: VcpuInfo.SIZE,
    vcpuInfoUpcallMask: VcpuInfo.evtchn_upcall_mask,
    maxVcpus: MAX_VIRT_CPUS,
  }),
});

export interface BuildParams {
  /** The kernel: an ELF32 i386 executable with a `__xen_guest` section. */
  readonly image: Uint8Array;
  /** All of machine memory; frame f is bytes f*4096 .. f*4096+4095. */
  readonly mem: Uint8Array;
  /** The domain's machine frames in allocation order (= p2m order); nr_pages = frames.length. */
  readonly frames: readonly number[];
  /** MFN of the domain's shared_info page (owned by Xen; not one of `frames`). */
  readonly sharedInfoMfn: number;
  readonly cmdline: string;
  /** SIF_* bits for start_info.flags. */
  readonly flags: number;
  /** Guest port of the control-interface event channel (xend uses 1). Default 0. */
  readonly controlEvtchn?: number;
  /** Initial ramdisk / module, loaded after the kernel. */
  readonly module?: Uint8Array;
  /** Written to shared_info.n_vcpu. Default 1. */
  readonly vcpus?: number;
  /** Guest ABI revision. Default "2005-03". */
  readonly abi?: BootAbiName;
  /** JUL: guest port of the xenstore event channel (start_info.store_evtchn). Default 0. */
  readonly storeEvtchn?: number;
}

export interface InitialRegs {
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
  readonly esi: number;
  readonly edi: number;
  readonly ebp: number;
  readonly esp: number;
  readonly eip: number;
  /** As the tools write it (0x204 at MAR); the CPU forces bit 1, so the guest sees 0x206. */
  readonly eflags: number;
  readonly cs: number;
  readonly ds: number;
  readonly es: number;
  readonly fs: number;
  readonly gs: number;
  readonly ss: number;
}

export interface DomainImage {
  readonly abi: BootAbiName;
  readonly guest: XenGuestInfo;
  readonly nrPages: number;
  /** First mapped VA; PFN k is at vStart + k*4096. */
  readonly vStart: number;
  /** End of the bootstrap mapping (exclusive, 4 MiB aligned). */
  readonly vEnd: number;
  readonly kernStart: number;
  readonly kernEnd: number;
  readonly entry: number;
  /** VA of the module, or 0 when none was given. */
  readonly modStart: number;
  readonly modLen: number;
  /** VA of the PFN->MFN array (nr_pages u32). */
  readonly mfnListVa: number;
  /** VA of the bootstrap L2 (start_info.pt_base); the L1s follow it. */
  readonly ptBaseVa: number;
  readonly startInfoVa: number;
  readonly stackVa: number;
  /** JUL: VA of the (zeroed) xenstore page between start_info and the stack; 0 at MAR. */
  readonly storePageVa: number;
  /** Initial ESP = kernel_esp. */
  readonly stackTop: number;
  /** MFN of the bootstrap L2: CR3 = l2Mfn << 12. The hypervisor must validate and pin it. */
  readonly l2Mfn: number;
  readonly cr3: number;
  /** MFNs of the page-table frames: the L2 first, then the L1s in VA order. */
  readonly ptFrames: readonly number[];
  readonly nrPtFrames: number;
  /** M2P entries the hypervisor must set: [mfn, pfn] for every frame (frames[k] <-> k). */
  readonly m2p: ReadonlyArray<readonly [number, number]>;
  readonly initialRegs: InitialRegs;
  readonly kernelSs: number;
  readonly kernelEsp: number;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const isU32 = (n: unknown): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

/** Layout of the bootstrap region (abi.md §4.2), all VAs. */
interface Layout {
  vStart: number;
  modStart: number;
  modEnd: number;
  mfnListStart: number;
  mfnListEnd: number;
  ptStart: number;
  ptEnd: number;
  nrPtFrames: number;
  startInfo: number;
  stack: number;
  stackEnd: number;
  vEnd: number;
}

/** Solve the layout as xc_linux_build does: the page-table count depends on v_end and back. */
function computeLayout(p: BootAbiProfile, k: XenKernelImage, modLen: number, nrPages: number): Layout {
  const L = p.layout;
  const modStart = roundUp(k.kernEnd, PAGE_SIZE);
  const modEnd = modStart + modLen;
  const mfnListStart = roundUp(modEnd, PAGE_SIZE);
  const mfnListEnd = mfnListStart + nrPages * L.MFN_LIST_ENTRY_SIZE;
  const ptStart = roundUp(mfnListEnd, PAGE_SIZE);
  const slot = 1 << L2_PAGETABLE_SHIFT;
  for (let nrPt = L.MIN_PT_FRAMES; ; nrPt++) {
    const ptEnd = ptStart + nrPt * PAGE_SIZE;
    const startInfo = ptEnd;
    const stack = startInfo + (1 + L.PAGES_BETWEEN_START_INFO_AND_STACK) * PAGE_SIZE;
    const stackEnd = stack + L.STACK_PAGES * PAGE_SIZE;
    let vEnd = roundUp(stackEnd, L.END_ALIGN);
    if (vEnd - stackEnd < L.MIN_END_PADDING) vEnd += L.END_ALIGN;
    if (Math.ceil((vEnd - k.vStart) / slot) + 1 <= nrPt) {
      return {
        vStart: k.vStart,
        modStart,
        modEnd,
        mfnListStart,
        mfnListEnd,
        ptStart,
        ptEnd,
        nrPtFrames: nrPt,
        startInfo,
        stack,
        stackEnd,
        vEnd,
      };
    }
  }
}

/**
 * Build a domain's boot image into machine memory (abi.md §4.2–§4.5). Writes the kernel
 * segments (zeroing bss), the module, the mfn_list, the bootstrap L2 and L1s, start_info and
 * a zeroed stack page into the domain's frames, and resets shared_info (first 588 bytes zeroed,
 * upcall mask 1 on every VCPU, n_vcpu). Does not touch L2 slots 1008..1023 nor the M2P.
 * Throws `BuildError` (wrapping any `ElfError` as its cause).
 */
export function buildDomainImage(params: BuildParams): DomainImage {
  const abiName = params.abi ?? "2005-03";
  const p = Object.hasOwn(BOOT_ABIS, abiName) ? BOOT_ABIS[abiName] : undefined;
  if (p === undefined) throw new BuildError(`unknown guest ABI revision ${JSON.stringify(abiName)}`);
  const { mem, frames } = params;
  if (!(mem instanceof Uint8Array)) throw new BuildError("machine memory is not a byte array");
  if (!(params.image instanceof Uint8Array)) throw new BuildError("kernel image is not a byte array");
  const nrMfns = Math.floor(mem.length / PAGE_SIZE);
  const nrPages = frames.length;
  if (nrPages === 0) throw new BuildError("the domain has no memory (frames is empty)");
  const seen = new Set<number>();
  for (let i = 0; i < nrPages; i++) {
    const f = frames[i];
    if (!isU32(f) || f >= nrMfns) {
      throw new BuildError(
        `frames[${i}] = ${String(f)} is not a machine frame (memory has ${nrMfns} frames)`,
      );
    }
    if (seen.has(f)) throw new BuildError(`frames[${i}] = ${hex(f)} appears twice in the frame list`);
    seen.add(f);
  }
  const si = params.sharedInfoMfn;
  if (!isU32(si) || si >= nrMfns) {
    throw new BuildError(`sharedInfoMfn ${String(si)} is not a machine frame (memory has ${nrMfns} frames)`);
  }
  if (seen.has(si)) throw new BuildError(`sharedInfoMfn ${hex(si)} is one of the domain's own frames`);
  if (!isU32(params.flags)) throw new BuildError(`start_info flags ${String(params.flags)} is not a u32`);
  const evtchn = params.controlEvtchn ?? 0;
  if (!Number.isInteger(evtchn) || evtchn < 0 || evtchn > 0xffff) {
    throw new BuildError(`control event channel ${String(evtchn)} is not a u16 port number`);
  }
  const storeEvtchn = params.storeEvtchn ?? 0;
  if (!Number.isInteger(storeEvtchn) || storeEvtchn < 0 || storeEvtchn > 0xffff) {
    throw new BuildError(`store event channel ${String(storeEvtchn)} is not a u16 port number`);
  }
  const vcpus = params.vcpus ?? BootLayoutMar.DEFAULT_VCPUS;
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > p.maxVcpus) {
    throw new BuildError(`vcpus ${String(vcpus)} is not in 1..${p.maxVcpus}`);
  }
  if (typeof params.cmdline !== "string") throw new BuildError("cmdline is not a string");
  const module = params.module;
  if (module !== undefined && !(module instanceof Uint8Array))
    throw new BuildError("module is not a byte array");
  const modLen = module?.length ?? 0;

  let k: XenKernelImage;
  try {
    k = parseXenKernel(params.image);
  } catch (e) {
    if (e instanceof ElfError) throw new BuildError(`bad kernel image: ${e.message}`, { cause: e });
    throw e;
  }
  if (k.guest.bsdSymtab) {
    throw new BuildError(
      "bad kernel image: BSD_SYMTAB (loading a symbol table after the kernel) is not supported",
    );
  }

  const lay = computeLayout(p, k, modLen, nrPages);
  if (lay.vEnd > p.hypervisorVirtStart) {
    throw new BuildError(
      `bootstrap region ${hex(lay.vStart)}..${hex(lay.vEnd)} reaches the hypervisor's area at ${hex(p.hypervisorVirtStart)}`,
    );
  }
  const needPages = (lay.vEnd - lay.vStart) / PAGE_SIZE;
  if (needPages > nrPages) {
    throw new BuildError(
      `initial guest OS requires too much space: ${needPages} pages (${(needPages * PAGE_SIZE) >> 20} MB, ` +
        `${hex(lay.vStart)}..${hex(lay.vEnd)}) but the domain has ${nrPages} pages (${(nrPages * PAGE_SIZE) / 2 ** 20} MB)`,
    );
  }

  // --- Writers through the p2m -----------------------------------------------------------------
  const dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  const maOfVa = (va: number): number => {
    const off = va - lay.vStart;
    return frames[Math.floor(off / PAGE_SIZE)]! * PAGE_SIZE + (off % PAGE_SIZE);
  };
  /** Copy src (or zeros when src is undefined) to [va, va+len), page by page. */
  const fill = (va: number, len: number, src?: Uint8Array, srcOff = 0): void => {
    let done = 0;
    while (done < len) {
      const cur = va + done;
      const chunk = Math.min(len - done, PAGE_SIZE - (cur % PAGE_SIZE));
      const ma = maOfVa(cur);
      if (src) mem.set(src.subarray(srcOff + done, srcOff + done + chunk), ma);
      else mem.fill(0, ma, ma + chunk);
      done += chunk;
    }
  };
  const pfnOfVa = (va: number): number => (va - lay.vStart) / PAGE_SIZE;

  // Kernel segments: p_filesz bytes from the file, the rest up to p_memsz zeroed.
  for (const s of k.loadable) {
    fill(s.paddr, s.filesz, k.elf.bytes, s.offset);
    fill(s.paddr + s.filesz, s.memsz - s.filesz);
  }

  // Module, then zero the tail of its last page.
  if (module !== undefined && modLen > 0) {
    fill(lay.modStart, modLen, module);
    fill(lay.modEnd, roundUp(lay.modEnd, PAGE_SIZE) - lay.modEnd);
  }

  // mfn_list, tail of its last page zeroed.
  const E = p.layout.MFN_LIST_ENTRY_SIZE;
  for (let i = 0; i < nrPages; i++) dv.setUint32(maOfVa(lay.mfnListStart + i * E), frames[i]!, true);
  fill(lay.mfnListEnd, roundUp(lay.mfnListEnd, PAGE_SIZE) - lay.mfnListEnd);

  // Bootstrap page tables: L2 at ptStart, L1s after it, one per 4 MiB slot of [vStart, vEnd).
  const ptFrames: number[] = [];
  let nextPt = pfnOfVa(lay.ptStart);
  const l2Mfn = frames[nextPt++]!;
  ptFrames.push(l2Mfn);
  mem.fill(0, l2Mfn * PAGE_SIZE, (l2Mfn + 1) * PAGE_SIZE);
  const ptFirstPfn = pfnOfVa(lay.ptStart);
  const ptEndPfn = pfnOfVa(lay.ptEnd);
  let l1Mfn = -1;
  const mapped = needPages;
  for (let pfn = 0; pfn < mapped; pfn++) {
    const va = lay.vStart + pfn * PAGE_SIZE;
    const l1Index = (va >>> L1_PAGETABLE_SHIFT) % L1_PAGETABLE_ENTRIES;
    if (l1Mfn < 0 || l1Index === 0) {
      l1Mfn = frames[nextPt++]!;
      ptFrames.push(l1Mfn);
      mem.fill(0, l1Mfn * PAGE_SIZE, (l1Mfn + 1) * PAGE_SIZE);
      dv.setUint32(
        l2Mfn * PAGE_SIZE + (va >>> L2_PAGETABLE_SHIFT) * 4,
        ((l1Mfn * PAGE_SIZE) | p.l2Prot) >>> 0,
        true,
      );
    }
    const ro = pfn >= ptFirstPfn && pfn < ptEndPfn;
    const pte = (frames[pfn]! * PAGE_SIZE + (ro ? p.l1ProtReadOnly : p.l1Prot)) >>> 0;
    dv.setUint32(l1Mfn * PAGE_SIZE + l1Index * 4, pte, true);
  }
  if (ptFrames.length > lay.nrPtFrames) {
    // Cannot happen with the layout rule above; guard the invariant anyway.
    throw new BuildError(`internal: ${ptFrames.length} page-table frames used, ${lay.nrPtFrames} reserved`);
  }

  // start_info: zero the struct, then fill it.
  const SI = p.startInfo;
  const siMa = maOfVa(lay.startInfo);
  mem.fill(0, siMa, siMa + SI.SIZE);
  dv.setUint32(siMa + SI.nr_pages, nrPages, true);
  dv.setUint32(siMa + SI.shared_info, (si * PAGE_SIZE) >>> 0, true);
  dv.setUint32(siMa + SI.flags, params.flags >>> 0, true);
  dv.setUint16(siMa + SI.domain_controller_evtchn, evtchn, true);
  dv.setUint32(siMa + SI.pt_base, lay.ptStart, true);
  dv.setUint32(siMa + SI.nr_pt_frames, lay.nrPtFrames, true);
  dv.setUint32(siMa + SI.mfn_list, lay.mfnListStart, true);
  if (modLen > 0) {
    dv.setUint32(siMa + SI.mod_start, lay.modStart, true);
    dv.setUint32(siMa + SI.mod_len, modLen, true);
  }
  // strncpy(cmd_line, cmdline, MAX); cmd_line[MAX-1] = 0: bytes up to the first NUL, at most MAX-1.
  const cmd = new TextEncoder().encode(params.cmdline);
  const nul = cmd.indexOf(0);
  const cmdLen = Math.min(nul < 0 ? cmd.length : nul, p.maxCmdline - 1);
  mem.set(cmd.subarray(0, cmdLen), siMa + SI.cmd_line);

  // JUL: the xenstore page (right after start_info) is zeroed and named in start_info.
  const storePageVa = SI.store_page !== undefined ? lay.startInfo + PAGE_SIZE : 0;
  if (SI.store_page !== undefined) {
    fill(storePageVa, PAGE_SIZE);
    dv.setUint32(siMa + SI.store_page, storePageVa, true);
    if (SI.store_evtchn !== undefined) dv.setUint16(siMa + SI.store_evtchn, storeEvtchn, true);
  }

  // Bootstrap stack: zeroed.
  fill(lay.stack, lay.stackEnd - lay.stack);

  // shared_info: zero the struct, mask upcalls on every VCPU, set n_vcpu.
  const shMa = si * PAGE_SIZE;
  mem.fill(0, shMa, shMa + p.sharedInfoSize);
  for (let v = 0; v < p.maxVcpus; v++) mem[shMa + v * p.vcpuInfoSize + p.vcpuInfoUpcallMask] = 1;
  dv.setUint32(shMa + p.sharedInfoNVcpu, vcpus, true);

  const stackTop = lay.startInfo + p.layout.STACK_TOP_OFFSET;
  const initialRegs: InitialRegs = Object.freeze({
    eax: 0,
    ebx: 0,
    ecx: 0,
    edx: 0,
    esi: lay.startInfo,
    edi: 0,
    ebp: 0,
    esp: stackTop,
    eip: k.entry,
    eflags: p.initialEflags,
    cs: p.kernelCs,
    ds: p.kernelDs,
    es: p.kernelDs,
    fs: p.kernelDs,
    gs: p.kernelDs,
    ss: p.kernelSs,
  });
  return {
    abi: p.name,
    guest: k.guest,
    nrPages,
    vStart: lay.vStart,
    vEnd: lay.vEnd,
    kernStart: k.kernStart,
    kernEnd: k.kernEnd,
    entry: k.entry,
    modStart: modLen > 0 ? lay.modStart : 0,
    modLen,
    mfnListVa: lay.mfnListStart,
    ptBaseVa: lay.ptStart,
    startInfoVa: lay.startInfo,
    stackVa: lay.stack,
    storePageVa,
    stackTop,
    l2Mfn,
    cr3: (l2Mfn << PAGE_SHIFT) >>> 0,
    ptFrames,
    nrPtFrames: lay.nrPtFrames,
    m2p: frames.map((mfn, pfn) => [mfn, pfn] as const),
    initialRegs,
    kernelSs: p.kernelSs,
    kernelEsp: stackTop,
  };
}

/**
 * physdev_op (hypercall 19), MAR (semantics.md §9.1, abi.md §2.10): PCI configuration access,
 * IRQ unmask-notify and status, the virtual IOPL and the guest's I/O bitmap.
 *
 * The PCI ops reach the machine's bus (hv.pci) the way Xen did: with SLOPPY_CHECKING defined,
 * so no BAR/ROM faking; reads and writes go to the device through configuration mechanism #1.
 * A domain may touch only the devices on its list (Xen's pcidev_list, Domain.pciDevices): dom0
 * gets every device when it is created, others through DOM0_PCIDEV_ACCESS (grantPciAccess).
 * Both add devices with write access (ACC_WRITE) — Xen of March 2005 has no other way onto a
 * list — so the list holds no access flags and CFGREG_WRITE's "no write access" -EPERM cannot
 * arise.
 */
import {
  PCI_INTERRUPT_LINE,
  PCI_ROM_ADDRESS,
  type PciBus,
  type PciFunction,
  probeBarSize,
} from "../machine/pci.js";
import { EFAULT, EINVAL, ENODEV, EPERM, ESRCH } from "../public/errno.js";
import {
  IOBMP_BYTES,
  NR_IRQS_MAR,
  PCI_BUSMAX,
  PCI_DEVMAX,
  PCI_FUNCMAX,
  PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY,
  PhysdevIrqStatusQuery,
  PhysdevOp,
  PhysdevPciCfgreg,
  PhysdevPciInitialiseDevice,
  PhysdevPciProbeRootBuses,
  PhysdevSetIopl,
} from "../public/physdev.js";
import type { Domain, Vcpu } from "./domain.js";
import { accessOk } from "./guest_access.js";
import type { Hypervisor } from "./hypervisor.js";
import { pirqGuestUnmask } from "./irq.js";

/** A window a device decodes, as Xen's boot-time PCI scan recorded it (Linux struct resource). */
interface PciResource {
  readonly io: boolean;
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

/** Xen's struct pci_dev: a function found by the boot scan, its IRQ and its windows. */
export interface XenPciDev {
  readonly bus: number;
  readonly dev: number;
  readonly fn: number;
  readonly func: PciFunction;
  /** Xen's IRQ for the device (dev->irq): the IO-APIC line its pin is routed to, 0 with no pin. */
  irq: number;
  readonly resources: readonly PciResource[];
}

const scans = new WeakMap<PciBus, Map<number, XenPciDev>>();

/**
 * Xen's PCI scan, done once per bus before anyone else touches it (pci_read_bases sizes every
 * BAR and the ROM by writing all ones and restoring; pcibios_fixup_irqs routes the pins).
 */
export function pciDevices(bus: PciBus): Map<number, XenPciDev> {
  let devs = scans.get(bus);
  if (devs) return devs;
  devs = new Map();
  for (const { bus: b, dev, fn, func } of bus.list()) {
    const resources: PciResource[] = [];
    for (let i = 0; i < 6; i++) {
      const size = probeBarSize(bus, b, dev, fn, i);
      const start = func.barAddress(i);
      if (size && start !== null)
        resources.push({ io: func.bars[i]?.kind === "io", start, end: start + size - 1 });
    }
    if (func.rom) {
      const saved = bus.configRead(b, dev, fn, PCI_ROM_ADDRESS, 4);
      bus.configWrite(b, dev, fn, PCI_ROM_ADDRESS, 4, 0xfffffffe);
      const sz = bus.configRead(b, dev, fn, PCI_ROM_ADDRESS, 4) & 0xfffff800;
      bus.configWrite(b, dev, fn, PCI_ROM_ADDRESS, 4, saved);
      const start = (saved & 0xfffff800) >>> 0;
      if (sz) resources.push({ io: false, start, end: start + ((sz & -sz) >>> 0) - 1 });
    }
    const irq = func.spec.pin ? Math.max(func.intxLine, 0) : 0;
    devs.set(devKey(b, dev, fn), { bus: b, dev, fn, func, irq, resources });
  }
  scans.set(bus, devs);
  return devs;
}

function devKey(bus: number, dev: number, fn: number): number {
  return bus * 256 + dev * 8 + fn;
}

/**
 * pci_find_slot(bus, PCI_DEVFN(dev, func)): PCI_DEVFN masks dev to 5 bits and func to 3, so a
 * negative dev or func names a real slot; a negative bus (a huge unsigned number) names none.
 */
function findSlot(hv: Hypervisor, bus: number, dev: number, fn: number): XenPciDev | null {
  if ((bus | 0) < 0 || (bus | 0) > PCI_BUSMAX) return null;
  return pciDevices(hv.pci).get(devKey(bus | 0, dev & 31, fn & 7)) ?? null;
}

/**
 * check_dev_acc (semantics.md §9.1): physdev-capable (-EPERM); bus/dev/func in range as Xen's
 * signed ints (-EINVAL); the device exists (-ENODEV) and is on the domain's list (-EPERM).
 */
function checkDeviceAccess(
  hv: Hypervisor,
  d: Domain,
  bus: number,
  dev: number,
  fn: number,
): XenPciDev | number {
  if (!d.physdevCapable) return -EPERM;
  if ((bus | 0) > PCI_BUSMAX || (dev | 0) > PCI_DEVMAX || (fn | 0) > PCI_FUNCMAX) return -EINVAL;
  const pdev = findSlot(hv, bus, dev, fn);
  if (pdev === null) return -ENODEV;
  if (!d.pciDevices.has(devKey(pdev.bus, pdev.dev, pdev.fn))) return -EPERM;
  return pdev;
}

/** PCI_CONF1_ADDRESS with C int arithmetic: a negative dev or reg spills into the high bits. */
function conf1Address(bus: number, dev: number, fn: number, reg: number): number {
  return (0x80000000 | (bus << 16) | (dev << 11) | (fn << 8) | (reg & ~3)) >>> 0;
}

/**
 * pci_conf1_read (its reg > 255 check is the caller's): a length other than 1, 2, 4 reads
 * nothing (undefined: the value is left as the guest passed it) and succeeds. The data port is
 * chosen from the low bits of reg, so an unaligned access reads the aligned one containing it.
 */
function conf1Read(
  pci: PciBus,
  bus: number,
  dev: number,
  fn: number,
  reg: number,
  len: number,
): number | undefined {
  pci.writeConf1Address(conf1Address(bus, dev, fn, reg));
  if (len === 1) return pci.readConf1Data(reg & 3, 1);
  if (len === 2) return pci.readConf1Data(reg & 2, 2);
  if (len === 4) return pci.readConf1Data(0, 4);
  return undefined;
}

function conf1Write(
  pci: PciBus,
  bus: number,
  dev: number,
  fn: number,
  reg: number,
  len: number,
  value: number,
): number {
  if ((reg | 0) > 255) return -EINVAL;
  pci.writeConf1Address(conf1Address(bus, dev, fn, reg));
  if (len === 1) pci.writeConf1Data(reg & 3, 1, value & 0xff);
  else if (len === 2) pci.writeConf1Data(reg & 2, 2, value & 0xffff);
  else if (len === 4) pci.writeConf1Data(0, 4, value);
  return 0;
}

/** PCI_CFGREG_READ: on any access failure value = all ones (a device one may not see is absent). */
function pciCfgregRead(hv: Hypervisor, d: Domain, a: CfgregArgs): { rc: number; value?: number } {
  const pdev = checkDeviceAccess(hv, d, a.bus, a.dev, a.fn);
  if (typeof pdev === "number") return { rc: pdev, value: 0xffffffff };
  // Xen answers the interrupt line with its own IRQ number, whatever the length.
  if ((a.reg | 0) === PCI_INTERRUPT_LINE) return { rc: 0, value: pdev.irq };
  if ((a.reg | 0) > 255) return { rc: -EINVAL };
  return { rc: 0, value: conf1Read(hv.pci, a.bus | 0, a.dev | 0, a.fn | 0, a.reg | 0, a.len | 0) };
}

/**
 * PCI_CFGREG_WRITE: the access check (every listed device has write access), then a real write:
 * the device's own register rules decide which bits change (read-only bits stay).
 */
function pciCfgregWrite(hv: Hypervisor, d: Domain, a: CfgregArgs, value: number): number {
  const pdev = checkDeviceAccess(hv, d, a.bus, a.dev, a.fn);
  if (typeof pdev === "number") return pdev;
  return conf1Write(hv.pci, a.bus | 0, a.dev | 0, a.fn | 0, a.reg | 0, a.len | 0, value);
}

/**
 * PCI_INITIALISE_DEVICE (pcibios_enable_irq): a device with an interrupt pin and no IRQ yet gets
 * the line its pin is routed to. The boot scan already routed every wired pin, so this only
 * matters for a pin the scan could not route; the result of the routing is not reported.
 */
function pciInitialiseDevice(hv: Hypervisor, d: Domain, bus: number, dev: number, fn: number): number {
  const pdev = checkDeviceAccess(hv, d, bus, dev, fn);
  if (typeof pdev === "number") return pdev;
  if (pdev.func.spec.pin && pdev.irq === 0 && pdev.func.intxLine >= 0) pdev.irq = pdev.func.intxLine;
  return 0;
}

/** PCI_PROBE_ROOT_BUSES: one bit per bus holding a device on the domain's list (no other check). */
function pciProbeRootBuses(d: Domain): Uint32Array {
  const mask = new Uint32Array(8);
  for (const key of d.pciDevices) {
    const bus = key >>> 8;
    mask[bus >>> 5] |= 1 << (bus & 31);
  }
  return mask;
}

interface CfgregArgs {
  bus: number;
  dev: number;
  fn: number;
  reg: number;
  len: number;
}

/**
 * DOM0_PCIDEV_ACCESS (physdev_pci_access_modify, semantics.md §8 PCIDEV_ACCESS): the caller has
 * checked dom0_op's privilege and looked the domain up (d undefined: no such domain). Range
 * (-EINVAL), enable (revoking is unsupported: -EINVAL), domain (-ESRCH); then the target becomes
 * physdev-capable AND privileged (Xen's deliberate over-grant) even if the device turns out
 * absent (-ENODEV). A device not yet listed is added (with write access) and its I/O-port windows
 * opened in the domain's iobmp_mask (created all-closed).
 */
export function grantPciAccess(
  hv: Hypervisor,
  d: Domain | null | undefined,
  bus: number,
  dev: number,
  fn: number,
  enable: number | boolean,
): number {
  if ((bus | 0) > PCI_BUSMAX || (dev | 0) > PCI_DEVMAX || (fn | 0) > PCI_FUNCMAX) return -EINVAL;
  if (!enable) return -EINVAL;
  if (!d) return -ESRCH;
  d.physdevCapable = true;
  d.privileged = true;
  const pdev = findSlot(hv, bus, dev, fn);
  if (pdev === null) return -ENODEV;
  const key = devKey(pdev.bus, pdev.dev, pdev.fn);
  if (!d.pciDevices.has(key)) openIoWindows(d, pdev);
  d.pciDevices.add(key);
  return 0;
}

/** setup_ioport_memory_access: clear the mask bits of every port of the device's I/O windows. */
function openIoWindows(d: Domain, pdev: XenPciDev): void {
  if (d.iobmpMask === null) d.iobmpMask = new Uint8Array(IOBMP_BYTES).fill(0xff);
  const mask = d.iobmpMask;
  for (const r of pdev.resources) {
    if (!r.io) continue;
    for (let port = r.start; port <= r.end && port < 65536; port++) mask[port >>> 3] &= ~(1 << (port & 7));
  }
}

/**
 * physdev_init_dom0: the domain created privileged gets every PCI device (write access), an
 * all-open I/O-port mask and physdev capability.
 */
export function physdevInitDom0(hv: Hypervisor, d: Domain): void {
  if (d.iobmpMask === null) d.iobmpMask = new Uint8Array(IOBMP_BYTES);
  for (const pdev of pciDevices(hv.pci).values()) d.pciDevices.add(devKey(pdev.bus, pdev.dev, pdev.fn));
  d.physdevCapable = true;
}

/**
 * domain_iomem_in_pfn (semantics.md §1.4 step 3): may a physdev-capable domain map this non-RAM
 * frame? Only when it lies inside a memory window (BAR or ROM) of a device on the domain's list.
 */
export function domainIomemInPfn(hv: Hypervisor, d: Domain, mfn: number): boolean {
  if (!d.physdevCapable) return false;
  const devs = pciDevices(hv.pci);
  for (const key of d.pciDevices) {
    for (const r of devs.get(key)?.resources ?? []) {
      if (!r.io && Math.floor(r.start / 4096) <= mfn && mfn <= Math.floor(r.end / 4096)) return true;
    }
  }
  return false;
}

/** IRQ_STATUS_QUERY: NEEDS_UNMASK_NOTIFY unless the line is edge-triggered (no privilege check). */
export function irqStatusQuery(hv: Hypervisor, irq: number): { rc: number; flags: number } {
  if ((irq | 0) < 0 || irq >= NR_IRQS_MAR) return { rc: -EINVAL, flags: 0 };
  // Lines the machine lacks have Xen's "none" handler, whose name does not say "edge".
  const edge = hv.irq.has(irq) && hv.irq.trigger(irq) === "edge";
  return { rc: 0, flags: edge ? 0 : PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY };
}

function cfgregArgs(u32: (off: number) => number): CfgregArgs {
  const P = PhysdevPciCfgreg;
  return { bus: u32(P.bus), dev: u32(P.dev), fn: u32(P.func), reg: u32(P.reg), len: u32(P.len) };
}

/**
 * physdev_op(op*): the whole block (MAR 40 bytes, JUL 16: the domain's revision, abi.ts) is
 * copied back, even on error. JUL has no PCI ops: their numbers are unknown commands.
 */
export function doPhysdevOp(hv: Hypervisor, v: Vcpu, opVa: number): number {
  const abi = v.domain.abi;
  const env = abi.physdevOp;
  const op = hv.guest.copyFrom(opVa, env.SIZE);
  if (op === null) return -EFAULT;
  const dv = new DataView(op.buffer, op.byteOffset, op.byteLength);
  const u = env.u;
  const u32 = (off: number): number => dv.getUint32(u + off, true);
  const d = v.domain;
  let rc: number;
  let cmd = dv.getUint32(env.cmd, true);
  if (!abi.physdevPci && cmd <= PhysdevOp.PCI_PROBE_ROOT_BUSES) cmd = -1;
  switch (cmd) {
    case PhysdevOp.PCI_CFGREG_READ: {
      const P = PhysdevPciCfgreg;
      const r = pciCfgregRead(hv, d, cfgregArgs(u32));
      rc = r.rc;
      if (r.value !== undefined) dv.setUint32(u + P.value, r.value >>> 0, true);
      break;
    }
    case PhysdevOp.PCI_CFGREG_WRITE:
      rc = pciCfgregWrite(hv, d, cfgregArgs(u32), u32(PhysdevPciCfgreg.value));
      break;
    case PhysdevOp.PCI_INITIALISE_DEVICE: {
      const P = PhysdevPciInitialiseDevice;
      rc = pciInitialiseDevice(hv, d, u32(P.bus), u32(P.dev), u32(P.func));
      break;
    }
    case PhysdevOp.PCI_PROBE_ROOT_BUSES: {
      const mask = pciProbeRootBuses(d);
      for (let i = 0; i < 8; i++) dv.setUint32(u + PhysdevPciProbeRootBuses.busmask + 4 * i, mask[i], true);
      rc = 0;
      break;
    }
    case PhysdevOp.IRQ_UNMASK_NOTIFY:
      rc = pirqGuestUnmask(hv, d);
      break;
    case PhysdevOp.IRQ_STATUS_QUERY: {
      const r = irqStatusQuery(hv, u32(PhysdevIrqStatusQuery.irq));
      rc = r.rc;
      if (rc === 0) dv.setUint32(u + PhysdevIrqStatusQuery.flags, r.flags, true);
      break;
    }
    case PhysdevOp.SET_IOPL: {
      const iopl = u32(PhysdevSetIopl.iopl);
      rc = -EINVAL;
      if (iopl <= 3) {
        v.iopl = iopl;
        rc = 0;
      }
      break;
    }
    case PhysdevOp.SET_IOBITMAP: {
      const bitmap = u32(abi.physdevSetIobitmap.bitmap);
      const nrPorts = u32(abi.physdevSetIobitmap.nr_ports);
      rc = -EINVAL;
      if (accessOk(bitmap, IOBMP_BYTES) && nrPorts <= 65536) {
        v.iobmp = bitmap;
        v.iobmpLimit = nrPorts;
        rc = 0;
      }
      break;
    }
    default:
      rc = -EINVAL;
  }
  if (!hv.guest.copyTo(opVa, op)) return -EFAULT;
  return rc;
}

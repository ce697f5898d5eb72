/**
 * physdev_op (hypercall 19), MAR (semantics.md §9.1, abi.md §2.10): PCI configuration access,
 * IRQ unmask-notify and status, the virtual IOPL and the guest's I/O bitmap.
 *
 * The machine has no PCI devices yet, so the PCI ops run their access checks against an empty
 * bus: -EPERM without physdev access, -EINVAL out of range, else -ENODEV; PROBE_ROOT_BUSES
 * reports no buses. Exactly what Xen does on a machine without PCI devices.
 */
import { EFAULT, EINVAL, ENODEV, EPERM } from "../public/errno.js";
import {
  IOBMP_BYTES,
  NR_IRQS_MAR,
  PCI_BUSMAX,
  PCI_DEVMAX,
  PCI_FUNCMAX,
  PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY,
  PhysdevIrqStatusQuery,
  PhysdevOp,
  PhysdevOpMar,
  PhysdevPciCfgreg,
  PhysdevPciInitialiseDevice,
  PhysdevPciProbeRootBuses,
  PhysdevSetIobitmap,
  PhysdevSetIopl,
} from "../public/physdev.js";
import type { Domain, Vcpu } from "./domain.js";
import { accessOk } from "./guest_access.js";
import type { Hypervisor } from "./hypervisor.js";
import { pirqGuestUnmask } from "./irq.js";

/** check_dev_acc: physdev access, bus/dev/func in range (Xen's signed ints), device present. */
function checkDeviceAccess(d: Domain, bus: number, dev: number, func: number): number {
  if (!d.physdevCapable) return -EPERM;
  if ((bus | 0) > PCI_BUSMAX || (dev | 0) > PCI_DEVMAX || (func | 0) > PCI_FUNCMAX) return -EINVAL;
  // No device exists on the simulated bus (a negative number names none either).
  return -ENODEV;
}

/** IRQ_STATUS_QUERY: NEEDS_UNMASK_NOTIFY unless the line is edge-triggered (no privilege check). */
export function irqStatusQuery(hv: Hypervisor, irq: number): { rc: number; flags: number } {
  if ((irq | 0) < 0 || irq >= NR_IRQS_MAR) return { rc: -EINVAL, flags: 0 };
  // Lines the machine lacks have Xen's "none" handler, whose name does not say "edge".
  const edge = hv.irq.has(irq) && hv.irq.trigger(irq) === "edge";
  return { rc: 0, flags: edge ? 0 : PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY };
}

/** physdev_op(op*): the whole 40-byte block is copied back, even on error. */
export function doPhysdevOp(hv: Hypervisor, v: Vcpu, opVa: number): number {
  const op = hv.guest.copyFrom(opVa, PhysdevOpMar.SIZE);
  if (op === null) return -EFAULT;
  const dv = new DataView(op.buffer, op.byteOffset, op.byteLength);
  const u = PhysdevOpMar.u;
  const u32 = (off: number): number => dv.getUint32(u + off, true);
  const d = v.domain;
  let rc: number;
  switch (dv.getUint32(PhysdevOpMar.cmd, true)) {
    case PhysdevOp.PCI_CFGREG_READ: {
      const P = PhysdevPciCfgreg;
      rc = checkDeviceAccess(d, u32(P.bus), u32(P.dev), u32(P.func));
      // Reads from a device one may not access look like a missing device: all ones.
      if (rc !== 0) dv.setUint32(u + P.value, 0xffffffff, true);
      break;
    }
    case PhysdevOp.PCI_CFGREG_WRITE: {
      const P = PhysdevPciCfgreg;
      rc = checkDeviceAccess(d, u32(P.bus), u32(P.dev), u32(P.func));
      break;
    }
    case PhysdevOp.PCI_INITIALISE_DEVICE: {
      const P = PhysdevPciInitialiseDevice;
      rc = checkDeviceAccess(d, u32(P.bus), u32(P.dev), u32(P.func));
      break;
    }
    case PhysdevOp.PCI_PROBE_ROOT_BUSES:
      // One bit per bus of a device in the domain's list: the list is empty.
      for (let i = 0; i < 8; i++) dv.setUint32(u + PhysdevPciProbeRootBuses.busmask + 4 * i, 0, true);
      rc = 0;
      break;
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
      const bitmap = u32(PhysdevSetIobitmap.bitmap);
      const nrPorts = u32(PhysdevSetIobitmap.nr_ports);
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

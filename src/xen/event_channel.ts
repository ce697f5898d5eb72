/**
 * Event channels (hypercall 16): the per-domain port table, its sub-operations and the
 * notification rule (semantics.md §5, abi.md §2.8).
 *
 * Each sub-op is an exported function on plain values (port or -errno), so the toolstack and
 * tests use the same code as the hypercall, which only marshals the 32-byte op block.
 */
import { EFAULT, EINVAL, ENOSPC, ENOSYS, EPERM, ESRCH } from "../public/errno.js";
import {
  BIND_PIRQ__WILL_SHARE,
  EvtchnAllocUnbound,
  EvtchnBindInterdomain,
  EvtchnBindIpi,
  EvtchnBindPirq,
  EvtchnBindVirq,
  EvtchnClose,
  EvtchnOp,
  EvtchnSend,
  EvtchnStat,
  EvtchnStatus,
  NR_PIRQS,
} from "../public/event_channel.js";
import {
  DomId,
  MAX_VIRT_CPUS,
  NR_EVENT_CHANNELS,
  NR_VIRQS,
  SharedInfo,
  VcpuInfo,
  VirqMar,
} from "../public/xen.js";
import type { Domain, Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";
import { pirqGuestBind, pirqGuestUnbind } from "./irq.js";

// Port states (Xen's ECS_*). semantics.md §5.1
export const ECS_FREE = 0;
export const ECS_RESERVED = 1;
export const ECS_UNBOUND = 2;
export const ECS_INTERDOMAIN = 3;
export const ECS_PIRQ = 4;
export const ECS_VIRQ = 5;
export const ECS_IPI = 6;

/** The table starts with this many ports and grows to port + SPREAD when full. */
const INIT_EVENT_CHANNELS = 16;
const EVENT_CHANNELS_SPREAD = 32;

/** The port table: per port, its state and two state-specific words; `size` ports exist. */
export interface EventChannels {
  /** Ports 0..size-1 exist (Xen's max_event_channel); larger port numbers are -EINVAL. */
  size: number;
  state: Uint8Array;
  /** UNBOUND: remote domid. INTERDOMAIN: remote domid (its vcpu 0). PIRQ/VIRQ: number. IPI: vcpu. */
  a: Int32Array;
  /** INTERDOMAIN: remote port. */
  b: Int32Array;
}

/** init_event_channels: 16 ports, port 0 RESERVED. */
export function newEventChannels(): EventChannels {
  const t = {
    size: INIT_EVENT_CHANNELS,
    state: new Uint8Array(NR_EVENT_CHANNELS),
    a: new Int32Array(NR_EVENT_CHANNELS),
    b: new Int32Array(NR_EVENT_CHANNELS),
  };
  t.state[0] = ECS_RESERVED;
  return t;
}

/**
 * get_free_port: the lowest FREE port from vcpu_id*32; when none, the table grows to
 * port + 32. [QUIRK] Xen's cap test never matched (sizes 16, 48, … 1008, 1040), letting ports
 * reach 1039 past the shared-info bitmaps; we refuse with -ENOSPC once no port below 1024 is
 * free (semantics.md §5.1, docs/DEVIATIONS.md).
 */
export function getFreePort(d: Domain, vcpuId: number): number {
  const t = d.evtchn;
  let port = vcpuId * EVENT_CHANNELS_SPREAD;
  for (; port < t.size; port++) if (t.state[port] === ECS_FREE) return port;
  if (port >= NR_EVENT_CHANNELS) return -ENOSPC;
  t.size = Math.min(port + EVENT_CHANNELS_SPREAD, NR_EVENT_CHANNELS);
  return port;
}

// ---------------------------------------------------------------------------------------------
// Notification

/**
 * evtchn_set_pending (semantics.md §5.3), in strict order: pending bit (stop if already set),
 * mask (stop: the edge is lost), selector bit (stop if already set), upcall_pending (even when
 * upcall_mask is set), wake the vcpu if blocked.
 */
export function setPending(hv: Hypervisor, v: Vcpu, port: number): void {
  const si = v.domain.sharedInfoMfn * 4096;
  const word = port >>> 5;
  const bit = 1 << (port & 31);
  const pendAddr = si + SharedInfo.evtchn_pending + word * 4;
  const pend = hv.read32(pendAddr);
  if (pend & bit) return;
  hv.write32(pendAddr, pend | bit);
  if (hv.read32(si + SharedInfo.evtchn_mask + word * 4) & bit) return;
  const vi = si + SharedInfo.vcpu_data + v.id * VcpuInfo.SIZE;
  const sel = hv.read32(vi + VcpuInfo.evtchn_pending_sel);
  if (sel & (1 << word)) return;
  hv.write32(vi + VcpuInfo.evtchn_pending_sel, sel | (1 << word));
  hv.cpu.physWrite8(vi + VcpuInfo.evtchn_upcall_pending, 1);
  // dom0's vcpu runs TypeScript: its upcall is a callback (DESIGN.md decision 2).
  if (v.domain.hostUpcall !== null) v.domain.hostUpcall(v);
  else if (v.blocked) hv.wake(v);
}

/** send_guest_virq: nothing happens when the vcpu has no port bound for it. */
export function sendGuestVirq(hv: Hypervisor, v: Vcpu, virq: number): void {
  const port = v.virqPort[virq];
  if (port !== 0) setPending(hv, v, port);
}

/** send_guest_pirq: the event on the domain's port for the IRQ (vcpu 0), if bound. */
export function sendGuestPirq(hv: Hypervisor, d: Domain, pirq: number): void {
  const port = d.pirqToEvtchn[pirq];
  if (port !== 0) setPending(hv, d.vcpus[0], port);
}

/** The `q` debug key: VIRQ_DEBUG to every vcpu of every domain (semantics.md §9.2). */
export function debugKey(hv: Hypervisor): void {
  for (const d of hv.domains.values()) for (const v of d.vcpus) sendGuestVirq(hv, v, VirqMar.DEBUG);
}

// ---------------------------------------------------------------------------------------------
// Sub-operations (semantics.md §5.2)

/** alloc_unbound {dom → port}: a port in the caller awaiting `dom` (not checked). */
export function allocUnbound(v: Vcpu, dom: number): number {
  const port = getFreePort(v.domain, v.id);
  if (port < 0) return port;
  const t = v.domain.evtchn;
  t.state[port] = ECS_UNBOUND;
  t.a[port] = dom & 0xffff;
  return port;
}

/**
 * alloc_unbound of July 2005 {dom, port in/out}: port 0 allocates (the lowest free); another
 * port (a signed int: negative or beyond the table is -EINVAL) is made UNBOUND for dom if
 * FREE, accepted as it is if already UNBOUND for dom, else -EINVAL. Returns the port.
 */
export function allocUnboundPort(v: Vcpu, dom: number, port: number): number {
  const t = v.domain.evtchn;
  let p = port | 0;
  if (p === 0) {
    p = getFreePort(v.domain, v.id);
    if (p < 0) return p;
  } else if (p < 0 || p >= t.size) return -EINVAL;
  if (t.state[p] === ECS_FREE) {
    t.state[p] = ECS_UNBOUND;
    t.a[p] = dom & 0xffff;
  } else if (t.state[p] !== ECS_UNBOUND || t.a[p] !== (dom & 0xffff)) return -EINVAL;
  return p;
}

export interface InterdomainResult {
  rc: number;
  port1: number;
  port2: number;
}

/**
 * bind_interdomain {dom1, dom2, port1, port2}. Ports are Xen's signed ints: negative is
 * -EINVAL (before the domain lookup); 0 is a wildcard. The remote end of each side is the
 * other domain's vcpu 0. [QUIRK] kept: an unprivileged caller whose port2 is FREE gets -EPERM
 * even when dom2 is itself (the DOMID_SELF exemption is tested after translation). Later Xen
 * replaced the operation with one that always requires the remote port to be UNBOUND for the
 * caller, so the behaviour unprivileged guests see is unchanged.
 */
export function bindInterdomain(
  hv: Hypervisor,
  v: Vcpu,
  dom1In: number,
  dom2In: number,
  port1In: number,
  port2In: number,
): InterdomainResult {
  const self = v.domain;
  const priv = self.privileged;
  const fail = (rc: number): InterdomainResult => ({ rc, port1: port1In, port2: port2In });
  if (!priv && dom1In !== DomId.SELF) return fail(-EPERM);
  if ((port1In | 0) < 0 || (port2In | 0) < 0) return fail(-EINVAL);
  const dom1 = dom1In === DomId.SELF ? self.id : dom1In;
  const dom2 = dom2In === DomId.SELF ? self.id : dom2In;
  const d1 = hv.domains.get(dom1);
  const d2 = hv.domains.get(dom2);
  if (!d1 || !d2) return fail(-ESRCH);
  const t1 = d1.evtchn;
  const t2 = d2.evtchn;
  let port1 = port1In;
  let port2 = port2In;
  if (port1 === 0) {
    port1 = getFreePort(d1, 0);
    if (port1 < 0) return fail(port1);
  } else if (port1 >= t1.size) {
    return fail(-EINVAL);
  }
  if (port2 === 0) {
    // port1 is busy while port2 is chosen, in case dom1 == dom2.
    const saved = t1.state[port1];
    t1.state[port1] = ECS_INTERDOMAIN;
    port2 = getFreePort(d2, 0);
    t1.state[port1] = saved;
    if (port2 < 0) return { rc: port2, port1, port2: port2In };
  } else if (port2 >= t2.size) {
    return { rc: -EINVAL, port1, port2 };
  }
  const out = (rc: number): InterdomainResult => ({ rc, port1, port2 });

  switch (t1.state[port1]) {
    case ECS_FREE:
      break;
    case ECS_UNBOUND:
      if (t1.a[port1] !== dom2) return out(-EINVAL);
      break;
    case ECS_INTERDOMAIN:
      if (t1.a[port1] !== dom2) return out(-EINVAL);
      if (t1.b[port1] !== port2 && port2In !== 0) return out(-EINVAL);
      return { rc: 0, port1, port2: t1.b[port1] };
    default:
      return out(-EINVAL);
  }
  switch (t2.state[port2]) {
    case ECS_FREE:
      if (!priv) return out(-EPERM);
      break;
    case ECS_UNBOUND:
      if (t2.a[port2] !== dom1) return out(-EINVAL);
      break;
    case ECS_INTERDOMAIN:
      if (t2.a[port2] !== dom1) return out(-EINVAL);
      if (t2.b[port2] !== port1 && port1In !== 0) return out(-EINVAL);
      return { rc: 0, port1: t2.b[port2], port2 };
    default:
      return out(-EINVAL);
  }
  t1.state[port1] = ECS_INTERDOMAIN;
  t1.a[port1] = dom2;
  t1.b[port1] = port2;
  t2.state[port2] = ECS_INTERDOMAIN;
  t2.a[port2] = dom1;
  t2.b[port2] = port1;
  return out(0);
}

/** bind_virq {virq → port}: per vcpu; an already bound VIRQ returns its port. */
export function bindVirq(v: Vcpu, virq: number): number {
  if (virq >>> 0 >= NR_VIRQS) return -EINVAL;
  let port = v.virqPort[virq];
  if (port !== 0) return port;
  port = getFreePort(v.domain, v.id);
  if (port < 0) return port;
  const t = v.domain.evtchn;
  t.state[port] = ECS_VIRQ;
  t.a[port] = virq;
  v.virqPort[virq] = port;
  return port;
}

/**
 * bind_ipi {ipi_edom → port}: target vcpu id < 32. Xen compared the signed value, so a
 * negative id passed and later indexed outside the vcpu array on send; we take it unsigned
 * (-EINVAL), docs/DEVIATIONS.md.
 */
export function bindIpi(v: Vcpu, ipiEdom: number): number {
  if (ipiEdom >>> 0 >= MAX_VIRT_CPUS) return -EINVAL;
  // July 2005 (ipi_vcpu): the VCPU must exist in the caller's domain.
  if (v.domain.abi.evtchn.ipiVcpuMustExist && v.domain.vcpus[ipiEdom] === undefined) return -EINVAL;
  const port = getFreePort(v.domain, v.id);
  if (port < 0) return port;
  const t = v.domain.evtchn;
  t.state[port] = ECS_IPI;
  t.a[port] = ipiEdom;
  return port;
}

/** bind_pirq {pirq, flags → port}: an already bound pirq returns its port (semantics.md §5.5). */
export function bindPirq(hv: Hypervisor, v: Vcpu, pirq: number, flags: number): number {
  if (pirq >>> 0 >= NR_PIRQS) return -EINVAL;
  const d = v.domain;
  const bound = d.pirqToEvtchn[pirq];
  if (bound !== 0) return bound;
  const port = getFreePort(d, v.id);
  if (port < 0) return port;
  d.pirqToEvtchn[pirq] = port;
  const rc = pirqGuestBind(hv, v, pirq, (flags & BIND_PIRQ__WILL_SHARE) !== 0);
  if (rc !== 0) {
    d.pirqToEvtchn[pirq] = 0;
    return rc;
  }
  d.evtchn.state[port] = ECS_PIRQ;
  d.evtchn.a[port] = pirq;
  return port;
}

/** The domain an op names: DOMID_SELF is the caller; any other needs privilege. */
function targetDomain(hv: Hypervisor, v: Vcpu, dom: number): Domain | number {
  const id = dom === DomId.SELF ? v.domain.id : dom;
  if (dom !== DomId.SELF && !v.domain.privileged) return -EPERM;
  return hv.domains.get(id) ?? -ESRCH;
}

/** close {dom, port}. */
export function close(hv: Hypervisor, v: Vcpu, dom: number, port: number): number {
  const d = targetDomain(hv, v, dom);
  if (typeof d === "number") return d;
  return closePort(hv, d, port);
}

/**
 * __evtchn_close: frees the port; a PIRQ is unbound from the guest IRQ, a VIRQ unbound from
 * every vcpu mapping it to this port, and an interdomain peer goes back to UNBOUND awaiting
 * this domain, so it can be re-bound.
 */
export function closePort(hv: Hypervisor, d: Domain, port: number): number {
  const t = d.evtchn;
  if (port >>> 0 >= t.size) return -EINVAL;
  let rc = 0;
  switch (t.state[port]) {
    case ECS_FREE:
    case ECS_RESERVED:
      return -EINVAL;
    case ECS_PIRQ:
      rc = pirqGuestUnbind(hv, d, t.a[port]);
      if (rc === 0) d.pirqToEvtchn[t.a[port]] = 0;
      break;
    case ECS_VIRQ:
      for (const vc of d.vcpus) if (vc.virqPort[t.a[port]] === port) vc.virqPort[t.a[port]] = 0;
      break;
    case ECS_INTERDOMAIN: {
      const remote = hv.domains.get(t.a[port]);
      const rport = t.b[port];
      if (remote && remote.evtchn.state[rport] === ECS_INTERDOMAIN && remote.evtchn.a[rport] === d.id) {
        remote.evtchn.state[rport] = ECS_UNBOUND;
        remote.evtchn.a[rport] = d.id;
        remote.evtchn.b[rport] = 0;
      }
      break;
    }
  }
  t.state[port] = ECS_FREE;
  t.a[port] = 0;
  t.b[port] = 0;
  return rc;
}

/** destroy_event_channels: every port is closed; interdomain peers go to UNBOUND. */
export function closeAllPorts(hv: Hypervisor, d: Domain): void {
  for (let port = 1; port < d.evtchn.size; port++) {
    if (d.evtchn.state[port] !== ECS_FREE) closePort(hv, d, port);
  }
}

/** send {local_port}: only INTERDOMAIN (remote vcpu 0) and IPI (same port) ports. */
export function send(hv: Hypervisor, v: Vcpu, port: number): number {
  const t = v.domain.evtchn;
  if (port >>> 0 >= t.size) return -EINVAL;
  switch (t.state[port]) {
    case ECS_INTERDOMAIN: {
      const remote = hv.domains.get(t.a[port]);
      if (remote) setPending(hv, remote.vcpus[0], t.b[port]);
      return 0;
    }
    case ECS_IPI: {
      const target = v.domain.vcpus[t.a[port]];
      if (!target) return -EINVAL;
      setPending(hv, target, port);
      return 0;
    }
    default:
      return -EINVAL;
  }
}

export interface StatusResult {
  rc: number;
  status: number;
  /** unbound/interdomain dom (u16), or pirq / virq / ipi_edom. */
  u: number;
  /** interdomain port. */
  port: number;
  state: number;
}

/** status {dom, port → status, u}. */
export function status(hv: Hypervisor, v: Vcpu, dom: number, port: number): StatusResult {
  const r: StatusResult = { rc: 0, status: EvtchnStat.closed, u: 0, port: 0, state: ECS_FREE };
  const d = targetDomain(hv, v, dom);
  if (typeof d === "number") return { ...r, rc: d };
  const t = d.evtchn;
  if (port >>> 0 >= t.size) return { ...r, rc: -EINVAL };
  const s = t.state[port];
  r.state = s;
  switch (s) {
    case ECS_FREE:
    case ECS_RESERVED:
      r.status = EvtchnStat.closed;
      break;
    case ECS_UNBOUND:
      r.status = EvtchnStat.unbound;
      r.u = t.a[port];
      break;
    case ECS_INTERDOMAIN:
      r.status = EvtchnStat.interdomain;
      r.u = t.a[port];
      r.port = t.b[port];
      break;
    case ECS_PIRQ:
      r.status = EvtchnStat.pirq;
      r.u = t.a[port];
      break;
    case ECS_VIRQ:
      r.status = EvtchnStat.virq;
      r.u = t.a[port];
      break;
    case ECS_IPI:
      r.status = EvtchnStat.ipi;
      r.u = t.a[port];
      break;
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// The hypercall

/**
 * event_channel_op(op*): copies the 32-byte block in, runs the command and, for the ops with
 * outputs (not close, not send), copies the whole block back on success; a fault there is
 * -EFAULT but the operation stands.
 */
export function doEventChannelOp(hv: Hypervisor, v: Vcpu, opVa: number): number {
  // The envelope is the domain's revision's: MAR 32 bytes, union at 8; JUL 24, union at 4.
  const env = v.domain.abi.evtchnOp;
  // send, the commonest (every notification of a frontend or backend), allocates nothing:
  // the whole envelope must still be readable, as Xen's copy of it.
  const g = hv.guest;
  // An envelope in one page (the usual case) is read after one walk of the page tables.
  const ma = g.within(opVa, env.SIZE, false);
  if (ma >= 0) {
    const cpu = hv.cpu;
    if (cpu.physRead32(ma + env.cmd) === EvtchnOp.send)
      return send(hv, v, cpu.physRead32(ma + env.u + EvtchnSend.local_port) >>> 0);
  } else if (g.peek32(opVa + env.cmd) === EvtchnOp.send && g.ok) {
    if (!g.readable(opVa, env.SIZE)) return -EFAULT;
    return send(hv, v, g.peek32(opVa + env.u + EvtchnSend.local_port) >>> 0);
  }
  const op = hv.guest.copyFrom(opVa, env.SIZE);
  if (op === null) return -EFAULT;
  const dv = new DataView(op.buffer, op.byteOffset, op.byteLength);
  const u = env.u;
  const u32 = (off: number): number => dv.getUint32(u + off, true);
  const u16 = (off: number): number => dv.getUint16(u + off, true);
  let rc: number;
  let copyBack = true;
  switch (dv.getUint32(env.cmd, true)) {
    case EvtchnOp.alloc_unbound:
      // MAR: port out only; JUL: port in/out, 0 = allocate (abi.md §2.8.1).
      rc = v.domain.abi.evtchn.allocUnboundPortIn
        ? allocUnboundPort(v, u16(EvtchnAllocUnbound.dom), u32(EvtchnAllocUnbound.port))
        : allocUnbound(v, u16(EvtchnAllocUnbound.dom));
      if (rc >= 0) dv.setUint32(u + EvtchnAllocUnbound.port, rc, true);
      break;
    case EvtchnOp.bind_interdomain: {
      const B = EvtchnBindInterdomain;
      const r = bindInterdomain(hv, v, u16(B.dom1), u16(B.dom2), u32(B.port1), u32(B.port2));
      rc = r.rc;
      if (rc === 0) {
        dv.setUint32(u + B.port1, r.port1, true);
        dv.setUint32(u + B.port2, r.port2, true);
      }
      break;
    }
    case EvtchnOp.bind_virq:
      rc = bindVirq(v, u32(EvtchnBindVirq.virq));
      if (rc >= 0) dv.setUint32(u + EvtchnBindVirq.port, rc, true);
      break;
    case EvtchnOp.bind_ipi:
      rc = bindIpi(v, u32(EvtchnBindIpi.ipi_edom));
      if (rc >= 0) dv.setUint32(u + EvtchnBindIpi.port, rc, true);
      break;
    case EvtchnOp.bind_pirq:
      rc = bindPirq(hv, v, u32(EvtchnBindPirq.pirq), u32(EvtchnBindPirq.flags));
      if (rc >= 0) dv.setUint32(u + EvtchnBindPirq.port, rc, true);
      break;
    case EvtchnOp.close:
      rc = close(hv, v, u16(EvtchnClose.dom), u32(EvtchnClose.port));
      copyBack = false;
      break;
    case EvtchnOp.status: {
      const S = EvtchnStatus;
      const r = status(hv, v, u16(S.dom), u32(S.port));
      rc = r.rc;
      if (rc === 0) {
        dv.setUint32(u + S.status, r.status, true);
        if (r.state === ECS_UNBOUND || r.state === ECS_INTERDOMAIN) dv.setUint16(u + S.u, r.u, true);
        else if (r.state >= ECS_PIRQ) dv.setUint32(u + S.u, r.u, true);
        if (r.state === ECS_INTERDOMAIN) dv.setUint32(u + S.interdomain_port, r.port, true);
      }
      break;
    }
    default:
      return -ENOSYS;
  }
  if (rc > 0) rc = 0;
  if (rc === 0 && copyBack && !hv.guest.copyTo(opVa, op)) return -EFAULT;
  return rc;
}

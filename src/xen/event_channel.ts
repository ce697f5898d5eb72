/**
 * Event channels (hypercall 16): the per-domain port table, its sub-operations and the
 * notification rule (semantics.md §5).
 */
import { EINVAL, ENOSPC, ENOSYS, EPERM, ESRCH } from "../public/errno.js";
import {
  EvtchnAllocUnbound,
  EvtchnBindVirq,
  EvtchnClose,
  EvtchnOp,
  EvtchnOpMar,
  EvtchnSend,
  EvtchnStat,
  EvtchnStatus,
} from "../public/event_channel.js";
import { DomId, NR_EVENT_CHANNELS, NR_VIRQS, SharedInfo, VcpuInfo } from "../public/xen.js";
import type { Domain, Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";

// Port states (Xen's ECS_*).
const ECS_FREE = 0;
const ECS_RESERVED = 1;
const ECS_UNBOUND = 2;
const ECS_INTERDOMAIN = 3;
const ECS_PIRQ = 4;
const ECS_VIRQ = 5;
const ECS_IPI = 6;

/** The port table: per port, its state and two state-specific words. */
export interface EventChannels {
  state: Uint8Array;
  /** UNBOUND: remote domid. INTERDOMAIN: remote domid. PIRQ/VIRQ: the number. IPI: vcpu. */
  a: Int32Array;
  /** INTERDOMAIN: remote port. */
  b: Int32Array;
}

export function newEventChannels(): EventChannels {
  const t = {
    state: new Uint8Array(NR_EVENT_CHANNELS),
    a: new Int32Array(NR_EVENT_CHANNELS),
    b: new Int32Array(NR_EVENT_CHANNELS),
  };
  t.state[0] = ECS_RESERVED;
  return t;
}

/** get_free_port: lowest free port from vcpu_id*32; -ENOSPC when none is left below 1024. */
function getFreePort(v: Vcpu): number {
  const st = v.domain.evtchn.state;
  for (let p = v.id * 32; p < NR_EVENT_CHANNELS; p++) if (st[p] === ECS_FREE) return p;
  return -ENOSPC;
}

/**
 * evtchn_set_pending (semantics.md §5.3): pending bit, mask, selector, upcall_pending, wake.
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
  if (v.blocked) hv.wake(v);
}

/** send_guest_virq: nothing happens when the vcpu has no port bound for it. */
export function sendGuestVirq(hv: Hypervisor, v: Vcpu, virq: number): void {
  const port = v.virqPort[virq];
  if (port !== 0) setPending(hv, v, port);
}

/** event_channel_op(op*): copies the 32-byte block in, runs the command, copies it back. */
export function doEventChannelOp(hv: Hypervisor, v: Vcpu, opVa: number): number {
  const op = hv.guest.copyFrom(opVa, EvtchnOpMar.SIZE);
  if (op === null) return -14; // EFAULT
  const dv = new DataView(op.buffer);
  const u = EvtchnOpMar.u;
  let rc: number;
  switch (dv.getUint32(EvtchnOpMar.cmd, true)) {
    case EvtchnOp.bind_virq:
      rc = bindVirq(v, dv, u);
      break;
    case EvtchnOp.alloc_unbound:
      rc = allocUnbound(v, dv, u);
      break;
    case EvtchnOp.close:
      rc = close(hv, v, dv, u);
      break;
    case EvtchnOp.send:
      rc = send(hv, v, dv.getUint32(u + EvtchnSend.local_port, true));
      break;
    case EvtchnOp.status:
      rc = status(hv, v, dv, u);
      break;
    default:
      return -ENOSYS;
  }
  if (rc === 0 && !hv.guest.copyTo(opVa, op)) return -14;
  return rc;
}

function bindVirq(v: Vcpu, dv: DataView, u: number): number {
  const virq = dv.getUint32(u + EvtchnBindVirq.virq, true);
  if (virq >= NR_VIRQS) return -EINVAL;
  let port = v.virqPort[virq];
  if (port === 0) {
    port = getFreePort(v);
    if (port < 0) return port;
    const t = v.domain.evtchn;
    t.state[port] = ECS_VIRQ;
    t.a[port] = virq;
    v.virqPort[virq] = port;
  }
  dv.setUint32(u + EvtchnBindVirq.port, port, true);
  return 0;
}

function allocUnbound(v: Vcpu, dv: DataView, u: number): number {
  const port = getFreePort(v);
  if (port < 0) return port;
  const t = v.domain.evtchn;
  t.state[port] = ECS_UNBOUND;
  t.a[port] = dv.getUint16(u + EvtchnAllocUnbound.dom, true);
  dv.setUint32(u + EvtchnAllocUnbound.port, port, true);
  return 0;
}

/** The domain an op names: DOMID_SELF is the caller; others need privilege. */
function targetDomain(hv: Hypervisor, v: Vcpu, dom: number): Domain | number {
  if (dom === DomId.SELF) return v.domain;
  if (!v.domain.privileged) return -EPERM;
  return hv.domains.get(dom) ?? -ESRCH;
}

function close(hv: Hypervisor, v: Vcpu, dv: DataView, u: number): number {
  const d = targetDomain(hv, v, dv.getUint16(u + EvtchnClose.dom, true));
  if (typeof d === "number") return d;
  return closePort(hv, d, dv.getUint32(u + EvtchnClose.port, true));
}

export function closePort(hv: Hypervisor, d: Domain, port: number): number {
  const t = d.evtchn;
  if (port >= NR_EVENT_CHANNELS || t.state[port] === ECS_FREE || t.state[port] === ECS_RESERVED) return -EINVAL;
  switch (t.state[port]) {
    case ECS_VIRQ:
      for (const vc of d.vcpus) if (vc.virqPort[t.a[port]] === port) vc.virqPort[t.a[port]] = 0;
      break;
    case ECS_INTERDOMAIN: {
      const remote = hv.domains.get(t.a[port]);
      if (remote) {
        remote.evtchn.state[t.b[port]] = ECS_UNBOUND;
        remote.evtchn.a[t.b[port]] = d.id;
      }
      break;
    }
  }
  t.state[port] = ECS_FREE;
  t.a[port] = 0;
  t.b[port] = 0;
  return 0;
}

function send(hv: Hypervisor, v: Vcpu, port: number): number {
  const t = v.domain.evtchn;
  if (port >= NR_EVENT_CHANNELS) return -EINVAL;
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

function status(hv: Hypervisor, v: Vcpu, dv: DataView, u: number): number {
  const d = targetDomain(hv, v, dv.getUint16(u + EvtchnStatus.dom, true));
  if (typeof d === "number") return d;
  const port = dv.getUint32(u + EvtchnStatus.port, true);
  if (port >= NR_EVENT_CHANNELS) return -EINVAL;
  const t = d.evtchn;
  const s = t.state[port];
  const out = [EvtchnStat.closed, EvtchnStat.closed, EvtchnStat.unbound, EvtchnStat.interdomain];
  const code =
    s < out.length ? out[s] : s === ECS_PIRQ ? EvtchnStat.pirq : s === ECS_VIRQ ? EvtchnStat.virq : EvtchnStat.ipi;
  dv.setUint32(u + EvtchnStatus.status, code, true);
  if (s === ECS_UNBOUND || s === ECS_INTERDOMAIN) dv.setUint16(u + EvtchnStatus.u, t.a[port], true);
  if (s === ECS_INTERDOMAIN) dv.setUint32(u + EvtchnStatus.interdomain_port, t.b[port], true);
  if (s >= ECS_PIRQ) dv.setUint32(u + EvtchnStatus.u, t.a[port], true);
  return 0;
}

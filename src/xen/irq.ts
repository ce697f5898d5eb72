/**
 * Physical IRQs bound to guests (Xen's arch/x86/irq.c guest half, semantics.md §5.5): which
 * domains share each IRQ, the in-flight count, delivery as events, and unmask-notify. The
 * lines themselves are the machine's IrqController (src/machine/irq.ts).
 */
import { NmiReason } from "../machine/irq.js";
import { EBUSY, EPERM } from "../public/errno.js";
import { NR_PIRQS } from "../public/event_channel.js";
import { IRQ_MAX_GUESTS, NR_IRQS_MAR } from "../public/physdev.js";
import { SharedInfo, VirqMar } from "../public/xen.js";
import type { Domain, Vcpu } from "./domain.js";
import { sendGuestPirq, sendGuestVirq } from "./event_channel.js";
import type { Hypervisor } from "./hypervisor.js";

/** irq_guest_action_t: the guests bound to one IRQ. */
interface GuestAction {
  readonly guests: Domain[];
  inFlight: number;
  readonly shareable: boolean;
}

/** Xen's irq_desc[] as far as guests see it: per IRQ, Xen's own use or the guests' action. */
export class GuestIrqs {
  private readonly actions: (GuestAction | null)[] = new Array<GuestAction | null>(NR_IRQS_MAR).fill(null);
  /** IRQs Xen keeps for itself: 0 (the PIT timer) and 2 (the 8259 cascade). */
  private readonly xenUsed = new Set<number>([0, 2]);

  action(irq: number): GuestAction | null {
    return this.actions[irq] ?? null;
  }

  setAction(irq: number, a: GuestAction | null): void {
    this.actions[irq] = a;
  }

  usedByXen(irq: number): boolean {
    return this.xenUsed.has(irq);
  }

  /** Domains bound to the IRQ (for tools and tests). */
  guestsOf(irq: number): readonly Domain[] {
    return this.actions[irq]?.guests ?? [];
  }

  inFlight(irq: number): number {
    return this.actions[irq]?.inFlight ?? 0;
  }
}

/**
 * pirq_guest_bind: physdev-capable domains only (-EPERM); an IRQ Xen uses is -EBUSY; a second
 * guest needs both sides shareable (-EBUSY); at most 7 guests. The first guest starts the line.
 */
export function pirqGuestBind(hv: Hypervisor, v: Vcpu, irq: number, willShare: boolean): number {
  const d = v.domain;
  if (!d.physdevCapable) return -EPERM;
  let action = hv.guestIrqs.action(irq);
  if (action === null) {
    if (hv.guestIrqs.usedByXen(irq)) return -EBUSY;
    action = { guests: [], inFlight: 0, shareable: willShare };
    hv.guestIrqs.setAction(irq, action);
    if (hv.irq.has(irq)) hv.irq.startup(irq);
  } else if (!willShare || !action.shareable) {
    return -EBUSY;
  }
  if (action.guests.length === IRQ_MAX_GUESTS) return -EBUSY;
  action.guests.push(d);
  return 0;
}

/**
 * pirq_guest_unbind: drop the domain's in-flight contribution (ending the IRQ at zero), then
 * remove it; the last guest shuts the line down.
 */
export function pirqGuestUnbind(hv: Hypervisor, d: Domain, irq: number): number {
  const action = hv.guestIrqs.action(irq);
  if (action === null) return 0;
  if (d.pirqMask[irq]) {
    d.pirqMask[irq] = 0;
    if (--action.inFlight === 0 && hv.irq.has(irq)) hv.irq.end(irq);
  }
  const i = action.guests.indexOf(d);
  if (i >= 0) action.guests.splice(i, 1);
  if (action.guests.length === 0) {
    hv.guestIrqs.setAction(irq, null);
    if (hv.irq.has(irq)) hv.irq.shutdown(irq);
  }
  return 0;
}

/**
 * pirq_guest_unmask (PHYSDEVOP_IRQ_UNMASK_NOTIFY): every IRQ the domain has in flight whose
 * event port is not masked is cleared; an IRQ whose in-flight count reaches 0 is ended.
 */
export function pirqGuestUnmask(hv: Hypervisor, d: Domain): number {
  const si = d.sharedInfoMfn * 4096;
  for (let irq = 0; irq < NR_PIRQS; irq++) {
    if (!d.pirqMask[irq]) continue;
    const port = d.pirqToEvtchn[irq];
    const masked = (hv.read32(si + SharedInfo.evtchn_mask + (port >>> 5) * 4) >>> (port & 31)) & 1;
    if (masked) continue;
    d.pirqMask[irq] = 0;
    const action = hv.guestIrqs.action(irq);
    if (action && --action.inFlight === 0 && hv.irq.has(irq)) hv.irq.end(irq);
  }
  return 0;
}

/**
 * __do_IRQ_guest for every pending line: ack, then for each bound guest mark it in flight
 * (once) and set the event; the line is not ended until every guest unmask-notifies.
 * NMIs go to dom0 as VIRQ_PARITY_ERR / VIRQ_IO_ERR (Xen's nmi=dom0, the release default).
 * Called by the run loop after the timers.
 */
export function serviceMachineInterrupts(hv: Hypervisor): void {
  const ctl = hv.irq;
  // The time only when a periodic device can use it: at every turn of the run loop the boxed
  // double was most of an idle tick's allocation (48 of ~120 bytes).
  if (ctl.hasPeriodic) ctl.tick(hv.nowNs());
  for (let irq = ctl.nextPending(); irq >= 0; irq = ctl.nextPending()) {
    ctl.ack(irq);
    const action = hv.guestIrqs.action(irq);
    if (action === null) {
      // Nobody bound it (a disabled line never gets here): Xen acks and ends spurious IRQs.
      ctl.end(irq);
      continue;
    }
    for (const d of action.guests) {
      if (!d.pirqMask[irq]) {
        d.pirqMask[irq] = 1;
        action.inFlight++;
      }
      sendGuestPirq(hv, d, irq);
    }
  }
  const nmi = ctl.takeNmi();
  if (nmi !== 0) {
    const dom0 = hv.domains.get(0);
    if (dom0) {
      if (nmi & NmiReason.Parity) sendGuestVirq(hv, dom0.vcpus[0], VirqMar.PARITY_ERR);
      // Xen of March 2005 sent PARITY_ERR here too (it set the wrong reason bit); fixed in
      // December 2005 (docs/DEVIATIONS.md).
      if (nmi & NmiReason.IoCheck) sendGuestVirq(hv, dom0.vcpus[0], VirqMar.IO_ERR);
    }
  }
}

/** Machine time of the next periodic device interrupt on a bound line, or +Infinity. */
export function nextMachineInterruptNs(hv: Hypervisor): number {
  return hv.irq.nextDueNs();
}

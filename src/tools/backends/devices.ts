/**
 * A domain's virtual devices as a toolstack sets them up after building it: its blkif and netif
 * controllers with the disks and vifs it is configured with (xend did this between building and
 * unpausing a domain). tsxend's DomainManager and `tsxen run` both use it.
 */
import type { Hypervisor } from "../../xen/hypervisor.js";
import type { DiskSpec, VifSpec } from "../config.js";
import type { ControlInterface } from "../control_if.js";
import { type Dom0, dom0Of } from "../dom0.js";
import type { SessionOptions } from "../session.js";
import { BlkifController } from "./blkif_ctl.js";
import { NetifController } from "./netif_ctl.js";

export interface DomainDevices {
  blkif: BlkifController;
  netif: NetifController;
}

/**
 * Makes the controllers of domain domid and attaches its disks and vifs; on failure everything
 * attached is taken down again and the error (meant for a person) is thrown.
 */
export function attachDevices(
  dom0: Dom0,
  domid: number,
  control: ControlInterface,
  disks: readonly DiskSpec[],
  vifs: readonly VifSpec[],
  log: (m: string) => void,
): DomainDevices {
  const d = {
    blkif: new BlkifController(dom0, domid, control, log),
    netif: new NetifController(dom0, domid, control, log),
  };
  try {
    for (const x of disks) d.blkif.attach(x);
    for (const v of vifs) d.netif.attach(v);
  } catch (e) {
    detachDevices(d);
    throw e;
  }
  return d;
}

/** Before the domain is destroyed: rings disconnected, images closed, vifs off their bridges. */
export function detachDevices(d: Partial<DomainDevices>): void {
  d.blkif?.destroy();
  d.netif?.destroy();
}

/**
 * A GuestSession's devices hook (tsxen run, the gated Linux suite): the disks and vifs attached
 * after each build, detached before a restart; undefined when there are none.
 */
export function sessionDevices(
  hv: Hypervisor,
  disks: readonly DiskSpec[],
  vifs: readonly VifSpec[],
  log: (m: string) => void,
): SessionOptions["devices"] {
  if (disks.length === 0 && vifs.length === 0) return undefined;
  let current: DomainDevices | null = null;
  return {
    attach: (domain, control) => {
      if (control === null)
        throw new Error("virtual disks and vifs need the 2005-03 interface (a control interface)");
      current = attachDevices(dom0Of(hv), domain.id, control, disks, vifs, log);
    },
    detach: () => {
      if (current !== null) detachDevices(current);
      current = null;
    },
  };
}

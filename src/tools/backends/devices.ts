/**
 * A domain's virtual devices as a toolstack sets them up after building it: its blkif and netif
 * controllers with the disks and vifs it is configured with (xend did this between building and
 * unpausing a domain). tsxend's DomainManager and `tsxen run` both use it.
 */
import type { DiskSpec, VifSpec } from "../config.js";
import type { ControlInterface } from "../control_if.js";
import type { Dom0 } from "../dom0.js";
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

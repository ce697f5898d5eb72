/** xen_version (17) and vm_assist (21), semantics.md §9.3. */
import { EINVAL, ENOSYS } from "../public/errno.js";
import { MAX_VMASST_TYPE, VmAssistCmd, XEN_VERSION_VALUE, XenVer } from "../public/xen.js";
import type { Vcpu } from "./domain.js";

export function doXenVersion(cmd: number): number {
  return cmd === XenVer.version ? XEN_VERSION_VALUE : -ENOSYS;
}

export function doVmAssist(v: Vcpu, cmd: number, type: number): number {
  if (type > MAX_VMASST_TYPE) return -EINVAL;
  if (cmd === VmAssistCmd.enable) v.domain.vmAssist |= 1 << type;
  else if (cmd === VmAssistCmd.disable) v.domain.vmAssist &= ~(1 << type);
  else return -ENOSYS;
  return 0;
}

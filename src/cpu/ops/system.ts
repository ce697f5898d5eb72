import type { Def } from "./table.js";

export function registerSystem(_def: Def): void {}

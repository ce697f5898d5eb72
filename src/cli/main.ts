#!/usr/bin/env node
/**
 * The `tsxen` command. Each subcommand lives in its own module exporting a register
 * function; adding one is an import and an entry in COMMANDS.
 */
import { Command } from "commander";
import { registerCpuTest } from "./cpu-test.js";
import { registerRun } from "./run.js";

const COMMANDS: ((program: Command) => void)[] = [registerRun, registerCpuTest];

const program = new Command();
program.name("tsxen").description("a Xen-compatible hypervisor on its own x86-32 CPU");
for (const register of COMMANDS) register(program);
await program.parseAsync(process.argv);

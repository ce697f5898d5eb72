/**
 * Help that fits 80 columns (or a narrower terminal). Commander pads every description to the
 * longest term and stops wrapping when that leaves under 40 columns, which `xm help`'s long
 * argument lists did; here a long term gets its own line and the description wraps below it.
 */
import type { Command, Help } from "commander";

const MAX_WIDTH = 80;
const INDENT = 2;
const GAP = 2;
/** Terms longer than this go on a line of their own. */
const MAX_TERM = 28;

/** Word-wraps text to width columns; a word longer than a line is cut. */
export function wrapText(text: string, width: number): string[] {
  const out: string[] = [];
  for (const para of text.split("\n")) {
    let line = "";
    for (let word of para.split(/\s+/).filter(Boolean)) {
      while (word.length > width) {
        if (line !== "") out.push(line);
        out.push(word.slice(0, width));
        word = word.slice(width);
        line = "";
      }
      if (line === "") line = word;
      else if (line.length + 1 + word.length <= width) line += ` ${word}`;
      else {
        out.push(line);
        line = word;
      }
    }
    out.push(line);
  }
  return out;
}

function formatHelp(cmd: Command, helper: Help): string {
  const width = Math.min(MAX_WIDTH, helper.helpWidth ?? MAX_WIDTH);
  const args = helper
    .visibleArguments(cmd)
    .map((a) => [helper.argumentTerm(a), helper.argumentDescription(a)]);
  const opts = helper.visibleOptions(cmd).map((o) => [helper.optionTerm(o), helper.optionDescription(o)]);
  const cmds = helper
    .visibleCommands(cmd)
    .map((c) => [helper.subcommandTerm(c), helper.subcommandDescription(c)]);
  const termWidth = Math.min(MAX_TERM, Math.max(0, ...[...args, ...opts, ...cmds].map(([t]) => t.length)));
  const pad = " ".repeat(INDENT + termWidth + GAP);
  const section = (title: string, items: string[][]): string[] => {
    if (items.length === 0) return [];
    const lines = [`${title}:`];
    for (const [term, desc] of items) {
      const text = desc ? wrapText(desc, width - pad.length) : [];
      if (term.length > termWidth || text.length === 0) {
        lines.push(...wrapText(term, width - INDENT).map((l) => " ".repeat(INDENT) + l));
        lines.push(...text.map((l) => pad + l));
      } else {
        lines.push(" ".repeat(INDENT) + term.padEnd(termWidth + GAP) + text[0]);
        lines.push(...text.slice(1).map((l) => pad + l));
      }
    }
    return [...lines, ""];
  };
  const usage = wrapText(`Usage: ${helper.commandUsage(cmd)}`, width - INDENT).map((l, i) =>
    i === 0 ? l : " ".repeat(INDENT) + l,
  );
  const description = helper.commandDescription(cmd);
  return [
    ...usage,
    "",
    ...(description ? [...wrapText(description, width), ""] : []),
    ...section("Arguments", args),
    ...section("Options", opts),
    ...section("Commands", cmds),
  ].join("\n");
}

/** Gives program (and every command added to it afterwards) this help layout. */
export function fitHelp(program: Command): void {
  program.configureHelp({ formatHelp });
}

/**
 * The IRQ controller skips its scan of every line when nothing could have made one
 * deliverable since a scan found none (the hypervisor asks at every exit). Each change that
 * can make a line deliverable again must be seen by the next nextPending().
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IrqController } from "../src/machine/irq.js";

describe("IRQ controller: nextPending after a scan that found nothing", () => {
  it("sees a raise, an end that re-fires a level line, a startup and a trigger change", () => {
    const c = new IrqController(24);
    c.setTrigger(5, "level");
    c.startup(5);
    assert.equal(c.nextPending(), -1);
    // A device raises: found although the last scan found nothing.
    c.raise(5);
    assert.equal(c.nextPending(), 5);
    c.ack(5);
    // Level and in service: masked until end().
    assert.equal(c.nextPending(), -1);
    assert.equal(c.nextPending(), -1);
    c.raise(5);
    assert.equal(c.nextPending(), -1, "still in service");
    // end() with the line still asserted fires it again.
    c.end(5);
    assert.equal(c.nextPending(), 5);
    c.ack(5);
    assert.equal(c.nextPending(), -1);
    // In service and asserted: becoming an edge line lets it deliver while in service.
    c.raise(5);
    assert.equal(c.nextPending(), -1);
    c.setTrigger(5, "edge");
    assert.equal(c.nextPending(), 5);
    c.ack(5);
    c.end(5);
    // A level line asserted while shut down is latched at startup.
    c.setTrigger(17, "level");
    c.raise(17);
    assert.equal(c.nextPending(), -1, "disabled line latches nothing");
    c.startup(17);
    assert.equal(c.nextPending(), 17);
    // A periodic edge through tick() is a raise too.
    c.ack(17);
    c.lower(17);
    c.end(17);
    c.attachPeriodic(9, 1_000_000);
    c.startup(9);
    assert.equal(c.nextPending(), -1);
    c.tick(1_000_000);
    assert.equal(c.nextPending(), 9);
  });
});

/**
 * The debt ledger's obligations, read off the output bytes as they are
 * accepted: open brackets, an open string literal, an open code fence. Each
 * opening is one obligation; its closing discharges it. Used for telemetry
 * (opened / closed / closed-under-force); the automaton, not this scanner,
 * decides what is legal.
 */

export type ObligationKind = 'close_bracket' | 'close_string' | 'close_fence';

const CLOSER: Record<number, number> = { 0x28: 0x29, 0x5b: 0x5d, 0x7b: 0x7d };
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const BACKTICK = 0x60;

export class ObligationTracker {
  private readonly brackets: number[] = [];
  private inString = false;
  private escaped = false;
  private inFence = false;
  private backticks = 0;
  opened = 0;
  closed = 0;

  get outstanding(): number {
    return this.brackets.length + (this.inString ? 1 : 0) + (this.inFence ? 1 : 0);
  }

  /** Feeds bytes; returns how many obligations they discharged. */
  push(bytes: Uint8Array): number {
    const before = this.closed;
    for (const b of bytes) this.byte(b);
    return this.closed - before;
  }

  private byte(b: number): void {
    if (b === BACKTICK) {
      if (++this.backticks === 3) {
        this.backticks = 0;
        this.inFence = !this.inFence;
        if (this.inFence) this.opened++;
        else this.closed++;
      }
      return;
    }
    this.backticks = 0;
    if (this.inFence) return;
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (b === BACKSLASH) this.escaped = true;
      else if (b === QUOTE) {
        this.inString = false;
        this.closed++;
      }
      return;
    }
    if (b === QUOTE) {
      this.inString = true;
      this.opened++;
    } else if (CLOSER[b] !== undefined) {
      this.brackets.push(CLOSER[b]!);
      this.opened++;
    } else if (b === this.brackets[this.brackets.length - 1]) {
      this.brackets.pop();
      this.closed++;
    }
  }
}

/**
 * Text stop sequences (OpenAI `stop`). Generated text streams through push();
 * text that could be the beginning of a stop sequence is held back until the
 * next tokens show whether it is one, so a stop that spans several tokens is
 * still caught and never reaches the client.
 */

export interface StopResult {
  /** Text that can be released now (possibly ""). */
  text: string;
  /** A stop sequence was found: `text` ends just before it; generation should end. */
  stopped: boolean;
}

export class StopMatcher {
  private readonly stops: string[];
  private held = '';
  private done = false;

  constructor(stops: readonly string[]) {
    // An empty stop would match everywhere; OpenAI clients do not mean that.
    this.stops = stops.filter((s) => s.length > 0);
  }

  push(text: string): StopResult {
    if (this.done) return { text: '', stopped: true };
    const buf = this.held + text;
    let at = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.held = '';
      this.done = true;
      return { text: buf.slice(0, at), stopped: true };
    }
    const keep = this.partialSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** End of generation without a stop: the held text was not a stop after all. */
  flush(): string {
    const t = this.done ? '' : this.held;
    this.held = '';
    return t;
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop. */
  private partialSuffix(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > best; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
